import { EARLIEST_ZONE, localInstant, parseWallClock, planWaves, utcOffsetOf, wallClockAt } from './local-waves.js';

const iso = (d: Date) => d.toISOString();

describe('parseWallClock', () => {
  it.each(['2026-12-08T09:00', '2026-12-08T09:00:30', '2026-12-08T09:00:00Z', '2026-12-08T09:00:00.000+05:30'])(
    'reads %s as the wall clock 2026-12-08T09:00, ignoring seconds and offset',
    (input) => {
      expect(parseWallClock(input)).toBe('2026-12-08T09:00');
    },
  );

  it('keeps the digits as given whatever the offset says', () => {
    expect(parseWallClock('2026-12-08T23:59:59.999-11:00')).toBe('2026-12-08T23:59');
    expect(parseWallClock('2028-02-29T00:00')).toBe('2028-02-29T00:00');
    // A space for the T and an offset without its colon, as ISO 8601 allows.
    expect(parseWallClock('2026-12-08 09:00')).toBe('2026-12-08T09:00');
    expect(parseWallClock('2026-12-08T09:00:00+0530')).toBe('2026-12-08T09:00');
  });

  it.each([
    '',
    'tomorrow',
    '2026-02-30T09:00',
    '2027-02-29T09:00',
    '2026-12-08T24:00',
    '2026-12-08T09:60',
    '2026-12-08T23:59:60',
    '2026-12-08',
    '2026-12-08T9:00',
    '2026-12-08T09:00.000',
    '2026-12-08T09:00' + ' '.repeat(25),
    '2026-12-08T09:00:00.000000000+05:30' + '0'.repeat(6),
    '2026-12-08T09:00\u0000',
    '2026-12-08T09:00\n',
    '\n2026-12-08T09:00',
  ])('rejects %j', (input) => {
    expect(parseWallClock(input)).toBeNull();
  });

  it.each([20261208, null, undefined, {}, ['2026-12-08T09:00'], new Date('2026-12-08T09:00:00Z')])(
    'rejects the non-string %p',
    (input) => {
      expect(parseWallClock(input)).toBeNull();
    },
  );
});

// Every distinct UTC offset in use in December 2026; 09:00 local minus the offset, worked out by hand.
const DECEMBER: [zone: string, offset: string, sendAt: string][] = [
  ['Etc/GMT+12', '-12:00', '2026-12-08T21:00:00.000Z'],
  ['Pacific/Pago_Pago', '-11:00', '2026-12-08T20:00:00.000Z'],
  ['Pacific/Honolulu', '-10:00', '2026-12-08T19:00:00.000Z'],
  ['Pacific/Marquesas', '-09:30', '2026-12-08T18:30:00.000Z'],
  ['America/Anchorage', '-09:00', '2026-12-08T18:00:00.000Z'],
  ['America/Los_Angeles', '-08:00', '2026-12-08T17:00:00.000Z'],
  ['America/Denver', '-07:00', '2026-12-08T16:00:00.000Z'],
  ['America/Chicago', '-06:00', '2026-12-08T15:00:00.000Z'],
  ['America/New_York', '-05:00', '2026-12-08T14:00:00.000Z'],
  ['America/Halifax', '-04:00', '2026-12-08T13:00:00.000Z'],
  ['America/St_Johns', '-03:30', '2026-12-08T12:30:00.000Z'],
  ['America/Sao_Paulo', '-03:00', '2026-12-08T12:00:00.000Z'],
  ['America/Noronha', '-02:00', '2026-12-08T11:00:00.000Z'],
  ['Atlantic/Azores', '-01:00', '2026-12-08T10:00:00.000Z'],
  ['UTC', '+00:00', '2026-12-08T09:00:00.000Z'],
  ['Europe/London', '+00:00', '2026-12-08T09:00:00.000Z'],
  ['Europe/Berlin', '+01:00', '2026-12-08T08:00:00.000Z'],
  ['Africa/Cairo', '+02:00', '2026-12-08T07:00:00.000Z'],
  ['Europe/Moscow', '+03:00', '2026-12-08T06:00:00.000Z'],
  ['Asia/Tehran', '+03:30', '2026-12-08T05:30:00.000Z'],
  ['Asia/Dubai', '+04:00', '2026-12-08T05:00:00.000Z'],
  ['Asia/Kabul', '+04:30', '2026-12-08T04:30:00.000Z'],
  ['Asia/Karachi', '+05:00', '2026-12-08T04:00:00.000Z'],
  ['Asia/Kolkata', '+05:30', '2026-12-08T03:30:00.000Z'],
  ['Asia/Kathmandu', '+05:45', '2026-12-08T03:15:00.000Z'],
  ['Asia/Dhaka', '+06:00', '2026-12-08T03:00:00.000Z'],
  ['Asia/Yangon', '+06:30', '2026-12-08T02:30:00.000Z'],
  ['Asia/Bangkok', '+07:00', '2026-12-08T02:00:00.000Z'],
  ['Asia/Singapore', '+08:00', '2026-12-08T01:00:00.000Z'],
  ['Australia/Eucla', '+08:45', '2026-12-08T00:15:00.000Z'],
  ['Asia/Tokyo', '+09:00', '2026-12-08T00:00:00.000Z'],
  ['Australia/Darwin', '+09:30', '2026-12-07T23:30:00.000Z'],
  ['Australia/Brisbane', '+10:00', '2026-12-07T23:00:00.000Z'],
  ['Australia/Adelaide', '+10:30', '2026-12-07T22:30:00.000Z'],
  ['Australia/Lord_Howe', '+11:00', '2026-12-07T22:00:00.000Z'],
  ['Australia/Sydney', '+11:00', '2026-12-07T22:00:00.000Z'],
  ['Pacific/Fiji', '+12:00', '2026-12-07T21:00:00.000Z'],
  ['Pacific/Tongatapu', '+13:00', '2026-12-07T20:00:00.000Z'],
  ['Pacific/Auckland', '+13:00', '2026-12-07T20:00:00.000Z'],
  ['Pacific/Chatham', '+13:45', '2026-12-07T19:15:00.000Z'],
  ['Pacific/Kiritimati', '+14:00', '2026-12-07T19:00:00.000Z'],
  [EARLIEST_ZONE, '+14:00', '2026-12-07T19:00:00.000Z'],
];

describe('localInstant on an ordinary day (2026-12-08 09:00)', () => {
  it.each(DECEMBER)('%s (%s) → %s', (zone, offset, sendAt) => {
    const at = localInstant('2026-12-08T09:00', zone);
    expect(iso(at)).toBe(sendAt);
    expect(utcOffsetOf(at, zone)).toBe(offset);
    expect(wallClockAt(at, zone)).toBe('2026-12-08T09:00');
  });

  it('has no zone ahead of the earliest', () => {
    const first = Math.min(...DECEMBER.map(([, , sendAt]) => Date.parse(sendAt)));
    expect(iso(localInstant('2026-12-08T09:00', EARLIEST_ZONE))).toBe(new Date(first).toISOString());
  });

  it('throws for an unknown zone or a malformed wall clock', () => {
    expect(() => localInstant('2026-12-08T09:00', 'Mars/Olympus_Mons')).toThrow(Error);
    expect(() => localInstant('2026-12-08T09:00', '')).toThrow(Error);
    expect(() => localInstant('2026-02-30T09:00', 'UTC')).toThrow(Error);
    expect(() => wallClockAt(new Date(0), 'Mars/Olympus_Mons')).toThrow(Error);
  });
});

// [zone, wall clock, expected instant, what it is]; skipped times move on by the gap, repeated ones take the first.
const CHANGES: [zone: string, wall: string, sendAt: string, note: string][] = [
  // US: 02:00 EST → 03:00 EDT on 03-08; 02:00 EDT → 01:00 EST on 11-01.
  ['America/New_York', '2026-03-08T09:00', '2026-03-08T13:00:00.000Z', 'after spring forward (EDT)'],
  ['America/New_York', '2026-03-08T01:59', '2026-03-08T06:59:00.000Z', 'last minute before the gap (EST)'],
  ['America/New_York', '2026-03-08T02:00', '2026-03-08T07:00:00.000Z', 'skipped: 03:00 EDT'],
  ['America/New_York', '2026-03-08T02:30', '2026-03-08T07:30:00.000Z', 'skipped: 03:30 EDT'],
  ['America/New_York', '2026-03-08T03:00', '2026-03-08T07:00:00.000Z', 'first minute after the gap'],
  ['America/Chicago', '2026-03-08T09:00', '2026-03-08T14:00:00.000Z', 'after spring forward (CDT)'],
  ['America/New_York', '2026-11-01T09:00', '2026-11-01T14:00:00.000Z', 'after fall back (EST)'],
  ['America/New_York', '2026-11-01T01:00', '2026-11-01T05:00:00.000Z', 'repeated: first, EDT'],
  ['America/New_York', '2026-11-01T01:30', '2026-11-01T05:30:00.000Z', 'repeated: first, EDT'],
  ['America/New_York', '2026-11-01T01:59', '2026-11-01T05:59:00.000Z', 'repeated: first, EDT'],
  ['America/New_York', '2026-11-01T02:00', '2026-11-01T07:00:00.000Z', 'once only, EST'],
  // EU: 01:00 UTC both times; 02:00 CET → 03:00 CEST on 03-29, 03:00 CEST → 02:00 CET on 10-25.
  ['Europe/Berlin', '2026-03-29T09:00', '2026-03-29T07:00:00.000Z', 'after spring forward (CEST)'],
  ['Europe/Berlin', '2026-03-29T02:30', '2026-03-29T01:30:00.000Z', 'skipped: 03:30 CEST'],
  ['Europe/Berlin', '2026-10-25T09:00', '2026-10-25T08:00:00.000Z', 'after fall back (CET)'],
  ['Europe/Berlin', '2026-10-25T02:30', '2026-10-25T00:30:00.000Z', 'repeated: first, CEST'],
  ['Europe/London', '2026-10-25T01:30', '2026-10-25T00:30:00.000Z', 'repeated: first, BST'],
  // Lord Howe shifts by half an hour: 02:00 +11 → 01:30 +10:30 on 04-05; 02:00 +10:30 → 02:30 +11 on 10-04.
  ['Australia/Lord_Howe', '2026-04-05T09:00', '2026-04-04T22:30:00.000Z', 'after fall back (+10:30)'],
  ['Australia/Lord_Howe', '2026-04-05T01:45', '2026-04-04T14:45:00.000Z', 'repeated: first, +11:00'],
  ['Australia/Lord_Howe', '2026-10-04T09:00', '2026-10-03T22:00:00.000Z', 'after spring forward (+11:00)'],
  ['Australia/Lord_Howe', '2026-10-04T02:15', '2026-10-03T15:45:00.000Z', 'skipped: 02:45 +11:00'],
  // Chatham, at 03:45 local: 03:45 +13:45 → 02:45 +12:45 on 04-05; 02:45 +12:45 → 03:45 +13:45 on 09-27.
  ['Pacific/Chatham', '2026-04-05T09:00', '2026-04-04T20:15:00.000Z', 'after fall back (+12:45)'],
  ['Pacific/Chatham', '2026-04-05T03:15', '2026-04-04T13:30:00.000Z', 'repeated: first, +13:45'],
  ['Pacific/Chatham', '2026-09-27T09:00', '2026-09-26T19:15:00.000Z', 'after spring forward (+13:45)'],
  ['Pacific/Chatham', '2026-09-27T03:00', '2026-09-26T14:15:00.000Z', 'skipped: 04:00 +13:45'],
  // Sydney: 03:00 +11 → 02:00 +10 on 04-05; 02:00 +10 → 03:00 +11 on 10-04.
  ['Australia/Sydney', '2026-04-05T09:00', '2026-04-04T23:00:00.000Z', 'after fall back (+10:00)'],
  ['Australia/Sydney', '2026-04-05T02:30', '2026-04-04T15:30:00.000Z', 'repeated: first, +11:00'],
  ['Australia/Sydney', '2026-10-04T09:00', '2026-10-03T22:00:00.000Z', 'after spring forward (+11:00)'],
  ['Australia/Sydney', '2026-10-04T02:30', '2026-10-03T16:30:00.000Z', 'skipped: 03:30 +11:00'],
];

describe('localInstant on DST-change days (2026)', () => {
  it.each(CHANGES)('%s %s → %s (%s)', (zone, wall, sendAt) => {
    expect(iso(localInstant(wall, zone))).toBe(sendAt);
  });

  it('shows a repeated time on the clock at the instant chosen, and a skipped one moved by the gap', () => {
    expect(wallClockAt(localInstant('2026-11-01T01:30', 'America/New_York'), 'America/New_York')).toBe(
      '2026-11-01T01:30',
    );
    expect(utcOffsetOf(localInstant('2026-11-01T01:30', 'America/New_York'), 'America/New_York')).toBe('-04:00');
    expect(wallClockAt(localInstant('2026-10-04T02:15', 'Australia/Lord_Howe'), 'Australia/Lord_Howe')).toBe(
      '2026-10-04T02:45',
    );
  });
});

describe('planWaves', () => {
  const zones = [
    { timezone: 'America/Chicago', readers: 3 },
    { timezone: 'Europe/Paris', readers: 1 },
    { timezone: 'Europe/Berlin', readers: 2 },
    { timezone: 'Asia/Kolkata', readers: 4 },
    { timezone: 'Australia/Sydney', readers: 1 },
    { timezone: 'UTC', readers: 1 },
  ];

  it('makes one wave per instant, in time order, biggest zone first', () => {
    const waves = planWaves('2026-12-08T09:00', zones);
    expect(waves.map((w) => [w.wave, iso(w.sendAt), w.utcOffset, w.timezone, w.timezones, w.readers])).toEqual([
      [0, '2026-12-07T22:00:00.000Z', '+11:00', 'Australia/Sydney', ['Australia/Sydney'], 1],
      [1, '2026-12-08T03:30:00.000Z', '+05:30', 'Asia/Kolkata', ['Asia/Kolkata'], 4],
      [2, '2026-12-08T08:00:00.000Z', '+01:00', 'Europe/Berlin', ['Europe/Berlin', 'Europe/Paris'], 3],
      [3, '2026-12-08T09:00:00.000Z', '+00:00', 'UTC', ['UTC'], 1],
      [4, '2026-12-08T15:00:00.000Z', '-06:00', 'America/Chicago', ['America/Chicago'], 3],
    ]);
  });

  it('breaks a tie in readers alphabetically', () => {
    const [wave] = planWaves('2026-12-08T09:00', [
      { timezone: 'Europe/Paris', readers: 2 },
      { timezone: 'Europe/Berlin', readers: 2 },
      { timezone: 'Africa/Lagos', readers: 1 },
    ]);
    expect(wave.timezone).toBe('Europe/Berlin');
    expect(wave.timezones).toEqual(['Europe/Berlin', 'Europe/Paris', 'Africa/Lagos']);
  });

  it('splits one standard offset in two on a DST-change day', () => {
    const zones = [
      { timezone: 'America/Chicago', readers: 3 },
      { timezone: 'America/Regina', readers: 2 },
    ];
    expect(planWaves('2026-03-01T09:00', zones).map((w) => [iso(w.sendAt), w.utcOffset, w.timezones])).toEqual([
      ['2026-03-01T15:00:00.000Z', '-06:00', ['America/Chicago', 'America/Regina']],
    ]);
    expect(planWaves('2026-03-08T09:00', zones).map((w) => [iso(w.sendAt), w.utcOffset, w.timezones])).toEqual([
      ['2026-03-08T14:00:00.000Z', '-05:00', ['America/Chicago']],
      ['2026-03-08T15:00:00.000Z', '-06:00', ['America/Regina']],
    ]);
  });

  it('puts a zone read in a DST gap with the zones whose clocks it borrows', () => {
    // 02:30 does not exist in New York on 03-08: it is sent at 07:30Z (03:30 EDT), when Bogota shows 02:30.
    const waves = planWaves('2026-03-08T02:30', [
      { timezone: 'America/New_York', readers: 2 },
      { timezone: 'America/Bogota', readers: 1 },
    ]);
    expect(waves.map((w) => [iso(w.sendAt), w.utcOffset, w.timezones])).toEqual([
      ['2026-03-08T07:30:00.000Z', '-04:00', ['America/New_York', 'America/Bogota']],
    ]);
  });

  it('sums a zone given twice and ignores zones without readers', () => {
    const waves = planWaves('2026-12-08T09:00', [
      { timezone: 'Asia/Kolkata', readers: 2 },
      { timezone: 'Europe/Berlin', readers: 0 },
      { timezone: 'Asia/Kolkata', readers: 3 },
      { timezone: 'Asia/Tokyo', readers: -1 },
    ]);
    expect(waves).toEqual([
      {
        wave: 0,
        sendAt: new Date('2026-12-08T03:30:00.000Z'),
        utcOffset: '+05:30',
        timezone: 'Asia/Kolkata',
        timezones: ['Asia/Kolkata'],
        readers: 5,
      },
    ]);
  });

  it('throws for an unknown zone, even one without readers, and for a malformed wall clock', () => {
    expect(() => planWaves('2026-12-08T09:00', [...zones, { timezone: 'Mars/Olympus_Mons', readers: 1 }])).toThrow(
      /Mars\/Olympus_Mons/,
    );
    expect(() => planWaves('2026-12-08T09:00', [{ timezone: 'Nowhere', readers: 0 }])).toThrow(Error);
    expect(() => planWaves('tomorrow', zones)).toThrow(Error);
  });

  it('plans nothing for no zones', () => {
    expect(planWaves('2026-12-08T09:00', [])).toEqual([]);
    expect(planWaves('2026-12-08T09:00', [{ timezone: 'UTC', readers: 0 }])).toEqual([]);
  });
});
