import { Transform } from 'class-transformer';

/** Form posts send one value as a string and several as an array: always hand on an array. */
export const ToArray = () =>
  Transform(({ value }: { value: unknown }) =>
    value === undefined || value === null || value === '' ? undefined : Array.isArray(value) ? value : [value],
  );

export const NO_LINE_BREAKS = /^[^\r\n\0]*$/;
export const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
