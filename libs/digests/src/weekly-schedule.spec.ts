import {
  describeSchedule,
  localInputValue,
  nextSendTimes,
  parseWeeklyForm,
  timeZones,
  weeklyCron,
  weeklyOf,
  zonedLocalToUtc,
} from './weekly-schedule.js';

describe('weekly schedule control', () => {
  it('writes the cron for a day and a time, and reads it back', () => {
    expect(weeklyCron({ day: 2, time: '09:00' })).toBe('0 9 * * 2');
    expect(weeklyCron({ day: 'daily', time: '18:45' })).toBe('45 18 * * *');
    expect(weeklyOf('0 9 * * 2')).toEqual({ day: 2, time: '09:00' });
    expect(weeklyOf('30 7 * * 7')).toEqual({ day: 0, time: '07:30' });
    expect(weeklyOf('*/5 * * * *')).toBeNull();
    expect(weeklyOf('0 9 1 * *')).toBeNull();
  });

  it('says the schedule in words', () => {
    expect(describeSchedule('0 9 * * 2', 'America/Chicago')).toBe('every Tuesday at 09:00, America/Chicago');
    expect(describeSchedule('5 6 * * *', 'UTC')).toBe('every day at 06:05, UTC');
    expect(describeSchedule('0 9 1 * *', 'UTC')).toBe('cron "0 9 1 * *", UTC');
  });

  it('checks the form fields, each with its own message', () => {
    expect(parseWeeklyForm({ day: '2', time: '09:00', timezone: 'America/Chicago' })).toEqual({
      ok: true,
      cron: '0 9 * * 2',
      timezone: 'America/Chicago',
    });
    const bad = parseWeeklyForm({ day: '8', time: '25:00', timezone: 'Mars/Olympus' });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(Object.keys(bad.errors).sort()).toEqual(['day', 'time', 'timezone']);
  });

  it('gives the next three firings in the schedule zone, across a DST change', () => {
    // 2026-11-01 is the end of DST in Chicago: 09:00 local is 14:00 UTC before, 15:00 UTC after.
    const next = nextSendTimes('0 9 * * 2', 'America/Chicago', 3, new Date('2026-10-21T00:00:00Z'));
    expect(next.map((n) => n.at.toISOString())).toEqual([
      '2026-10-27T14:00:00.000Z',
      '2026-11-03T15:00:00.000Z',
      '2026-11-10T15:00:00.000Z',
    ]);
    expect(next[0].local).toMatch(/^Tuesday, October 27, 2026,? (at )?09:00 CDT$/);
  });

  it('lists IANA zones with UTC first', () => {
    const zones = timeZones();
    expect(zones[0]).toBe('UTC');
    expect(zones).toContain('America/Chicago');
  });
});

describe('zoned datetime-local values', () => {
  it('turns a wall-clock time in a zone into the instant, and back', () => {
    expect(zonedLocalToUtc('2026-12-01T09:00', 'America/Chicago')?.toISOString()).toBe('2026-12-01T15:00:00.000Z');
    expect(zonedLocalToUtc('2026-07-01T09:00', 'America/Chicago')?.toISOString()).toBe('2026-07-01T14:00:00.000Z');
    expect(zonedLocalToUtc('2026-07-01T09:00', 'UTC')?.toISOString()).toBe('2026-07-01T09:00:00.000Z');
    expect(zonedLocalToUtc('2026-02-30T09:00', 'UTC')).toBeNull();
    expect(zonedLocalToUtc('tomorrow', 'UTC')).toBeNull();
    expect(zonedLocalToUtc('2026-07-01T09:00', 'Mars/Olympus')).toBeNull();
    expect(localInputValue(new Date('2026-12-01T15:00:00Z'), 'America/Chicago')).toBe('2026-12-01T09:00');
  });
});
