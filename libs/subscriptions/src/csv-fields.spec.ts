import { checkImportRow, type ImportColumn, parseIsoTime } from './csv-fields.js';

const row = (over: Partial<Record<ImportColumn, string>>) =>
  checkImportRow(
    {
      email: 'pat@example.com',
      name: '',
      topics: '',
      timezone: '',
      consented_at: '2025-05-01T10:00:00Z',
      source: '',
      ...over,
    },
    2,
    Date.parse('2026-01-01T00:00:00Z'),
  );
const reason = (over: Partial<Record<ImportColumn, string>>) => {
  const r = row(over);
  return 'reason' in r ? r.reason : null;
};

describe('parseIsoTime', () => {
  it.each([
    ['2025-05-01T10:00:00Z', '2025-05-01T10:00:00.000Z'],
    ['2025-05-01T10:00Z', '2025-05-01T10:00:00.000Z'],
    ['2025-05-01t10:00:00.5z', '2025-05-01T10:00:00.500Z'],
    ['2025-05-01 12:00:00+02:00', '2025-05-01T10:00:00.000Z'],
    ['2025-05-01T05:30:00-0430', '2025-05-01T10:00:00.000Z'],
    ['2025-05-01T12:00:00+02', '2025-05-01T10:00:00.000Z'],
    ['2025-05-01', '2025-05-01T00:00:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
    ['0099-01-01T00:00:00Z', '0099-01-01T00:00:00.000Z'],
  ])('reads %s', (input, iso) => {
    expect(parseIsoTime(input)?.toISOString()).toBe(iso);
  });

  it.each([
    '1',
    'May 1',
    '5/1/2025 10:00',
    '2025-05-01T10:00:00', // no offset: the server's zone would decide
    '2025-05-01T10:00',
    '20250501T100000Z',
    '2025-5-1',
    '2025-02-29',
    '2025-13-01',
    '2025-04-31',
    '2025-05-01T24:00:00Z',
    '2025-05-01T10:60:00Z',
    '2025-05-01T10:00:00+24:00',
    ' 2025-05-01',
    '2025-05-01T10:00:00Z\n',
  ])('refuses %j', (input) => {
    expect(parseIsoTime(input)).toBeNull();
  });
});

describe('checkImportRow', () => {
  it('applies the signup rules to every field', () => {
    expect(
      row({
        name: ' Pat ',
        topics: 'Neck Pain; Sciatica|',
        timezone: 'America/Chicago',
        source: 'https://x.example/a',
      }),
    ).toEqual({
      line: 2,
      email: 'pat@example.com',
      name: 'Pat',
      topics: ['Neck Pain', 'Sciatica'],
      timezone: 'America/Chicago',
      consentedAt: new Date('2025-05-01T10:00:00Z'),
      source: 'https://x.example/a',
    });
    expect(reason({ email: '' })).toBe('email is required');
    expect(reason({ email: '"quoted"@example.com' })).toBe('email must be a valid email address');
    expect(reason({ name: 'x'.repeat(101) })).toBe('name must be at most 100 characters');
    expect(reason({ name: 'Pat\r\n' })).toBe('name must not contain line breaks');
    expect(reason({ topics: 'Neck\nPain' })).toBe('topics must not contain line breaks');
    expect(reason({ topics: Array.from({ length: 21 }, (_, i) => `t${i}`).join(';') })).toBe(
      'topics must have at most 20 entries',
    );
    expect(reason({ topics: `ok;${'x'.repeat(51)}` })).toBe('topics entries must be at most 50 characters');
    expect(reason({ timezone: 'Mars/Base' })).toMatch(/^timezone must be an IANA time zone/);
    expect(reason({ consented_at: '' })).toMatch(/^consented_at is required/);
    expect(reason({ consented_at: 'May 1' })).toMatch(/^consented_at must be an ISO 8601 time/);
    expect(reason({ consented_at: '2026-01-03' })).toBe('consented_at is in the future');
    expect(reason({ source: 'javascript:alert(1)' })).toBe('source must be an http(s) URL');
    expect(reason({ source: 'https://x.example/\nSet-Cookie: a' })).toBe('source must not contain line breaks');
    expect(reason({ source: `https://x.example/${'a'.repeat(2040)}` })).toBe('source must be at most 2048 characters');
  });
});
