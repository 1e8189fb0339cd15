import { implausible, parseFeedDate } from './feed-date.js';

describe('feed dates', () => {
  it.each([
    ['Mon, 23 Nov 2026 08:00:00 GMT', '2026-11-23T08:00:00.000Z'],
    ['23 Nov 2026 08:00 +0200', '2026-11-23T06:00:00.000Z'],
    ['Tue, 24 Nov 26 08:00:00 PDT', '2026-11-24T15:00:00.000Z'],
    ['Wed, 31 Dec 03 10:14:55 Z', '2003-12-31T10:14:55.000Z'],
    ['Thu, 01 Jan 1970 00:00:00 UT', '1970-01-01T00:00:00.000Z'],
    ['2003-12-31T10:14:55Z', '2003-12-31T10:14:55.000Z'],
    ['2003-12-31T10:14:55.25-08:00', '2003-12-31T18:14:55.250Z'],
    ['2003-12-31T10:14+0100', '2003-12-31T09:14:00.000Z'],
    ['2003-12-31 10:14:55', '2003-12-31T10:14:55.000Z'],
    ['2003-12-31', '2003-12-31T00:00:00.000Z'],
    ['2003-12', '2003-12-01T00:00:00.000Z'],
    ['2003', '2003-01-01T00:00:00.000Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
  ])('%s → %s', (raw, iso) => {
    expect(parseFeedDate(raw)?.toISOString()).toBe(iso);
  });

  it.each(['yesterday', '', '2003-02-30', '2003-13-01', '31 Foo 2003 10:00', '2003-12-31T25:00:00Z', '12/31/2003'])(
    'refuses %j',
    (raw) => {
      expect(parseFeedDate(raw)).toBeNull();
    },
  );

  it('refuses dates before 1970 or more than a day ahead', () => {
    const now = new Date('2026-11-25T12:00:00Z');
    expect(implausible(new Date('1969-12-31T23:59:59Z'), now)).toMatch(/before 1970/);
    expect(implausible(new Date('2026-11-26T13:00:00Z'), now)).toMatch(/more than a day in the future/);
    expect(implausible(new Date('2026-11-26T11:00:00Z'), now)).toBeNull();
  });
});
