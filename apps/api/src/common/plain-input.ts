import { type ArgumentMetadata, BadRequestException, type PipeTransform } from '@nestjs/common';

/** Deeper than any body Mailroom takes (a webhook's event is ~5 levels); refused before validation. */
export const MAX_INPUT_DEPTH = 16;

/**
 * Why a value from a client is not plain JSON-like data, or null when it is: nothing but null,
 * booleans, finite numbers, strings, arrays and plain objects, at most MAX_INPUT_DEPTH deep, with no
 * NUL character or unpaired surrogate in any string or key (PostgreSQL refuses both).
 * Iterative, so a hostile nesting cannot overflow the stack here.
 */
export function notPlainData(root: unknown, rootName: string): string | null {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value: root, path: rootName, depth: 0 }];
  const bad = (s: string, path: string): string | null =>
    s.includes('\0')
      ? `${path} must not contain NUL characters`
      : s.isWellFormed()
        ? null
        : `${path} contains an invalid character (an unpaired UTF-16 surrogate)`;
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (value === null || value === undefined || typeof value === 'boolean') continue;
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return `${path} must be a finite number`;
      continue;
    }
    if (typeof value === 'string') {
      const why = bad(value, path);
      if (why) return why;
      continue;
    }
    if (typeof value !== 'object') return `${path} has an unsupported type`;
    if (depth >= MAX_INPUT_DEPTH) return `${rootName} is nested too deeply (at most ${MAX_INPUT_DEPTH} levels)`;
    if (Array.isArray(value)) {
      value.forEach((v, i) => stack.push({ value: v, path: `${path}[${i}]`, depth: depth + 1 }));
      continue;
    }
    const proto: object | null = Object.getPrototypeOf(value) as object | null;
    // JSON gives Object.prototype; the form and query parsers give objects whose prototype has none.
    if (proto !== null && proto !== Object.prototype && Object.getPrototypeOf(proto) !== null)
      return `${rootName} must be JSON or form data`;
    for (const [k, v] of Object.entries(value)) {
      const why = bad(k, `a property name in ${path}`);
      if (why) return why;
      stack.push({ value: v, path: path === 'body' ? k : `${path}.${k}`, depth: depth + 1 });
    }
  }
  return null;
}

/**
 * Runs before validation on every body, query and route parameter: class-transformer and PostgreSQL
 * only ever see plain data, so a stream, a deep nesting, a NUL or a lone surrogate is a 400, never a 500.
 */
export class PlainInputPipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type === 'custom') return value;
    const why = notPlainData(value, metadata.data ?? metadata.type);
    if (why) throw new BadRequestException([why]);
    return value;
  }
}
