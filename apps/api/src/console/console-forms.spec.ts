import { BadRequestException, ConflictException, NotFoundException } from '@nestjs/common';
import { badRequestMessage, exceptionMessage, fields, newsletterSlug, notice, queryString } from './console-forms.js';

describe('console form helpers', () => {
  it('joins a validation list into one line, and takes a plain message as it is', () => {
    expect(exceptionMessage(new BadRequestException(['title must be set', 'url must be a URL']))).toBe(
      'title must be set; url must be a URL',
    );
    expect(exceptionMessage(new ConflictException('Digest 4 is already sent'))).toBe('Digest 4 is already sent');
  });

  it('reads only a 400 as a form message', () => {
    expect(badRequestMessage(new BadRequestException(['sendAt is in the past']))).toBe('sendAt is in the past');
    expect(badRequestMessage(new ConflictException('no'))).toBeNull();
    expect(badRequestMessage(new Error('no'))).toBeNull();
  });

  it('picks a notice by key, never an inherited property nor the text given', () => {
    const table = { saved: 'Saved.' };
    expect(notice(table, 'saved')).toBe('Saved.');
    expect(notice(table, 'toString')).toBeUndefined();
    expect(notice(table, ['saved'])).toBeUndefined();
  });

  it('reads repeated fields and single query values', () => {
    expect(fields({ a: ['1', 2, '3'] }, 'a')).toEqual(['1', '3']);
    expect(fields({ a: '1' }, 'a')).toEqual(['1']);
    expect(fields(null, 'a')).toEqual([]);
    expect(queryString(['x', 'y'])).toBe('');
    expect(queryString('x')).toBe('x');
  });

  it('answers 404 for a path segment that cannot be a newsletter slug', () => {
    expect(newsletterSlug('spine-health')).toBe('spine-health');
    for (const bad of ['', '-x', 'Spine', 'a/b', 'x'.repeat(64)])
      expect(() => newsletterSlug(bad)).toThrow(NotFoundException);
  });
});
