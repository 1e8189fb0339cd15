import { CronExpressionParser } from 'cron-parser';

/** The human side of a digest schedule: a day of the week (or every day) and a time, in a time zone. */
export const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;

export interface WeeklySchedule {
  /** 0 (Sunday) to 6, or 'daily' */
  day: number | 'daily';
  /** HH:MM, 24 h */
  time: string;
}

export type WeeklyScheduleErrors = Partial<Record<'day' | 'time' | 'timezone', string>>;

const TIME = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** Every IANA zone this runtime knows, with UTC first. */
export function timeZones(): string[] {
  const zones = Intl.supportedValuesOf('timeZone').filter((z) => z !== 'UTC');
  return ['UTC', ...zones];
}

export function isTimeZone(tz: string): boolean {
  if (!tz || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Checks form input (day, time, zone) and gives the cron it stands for, or messages per field. */
export function parseWeeklyForm(input: {
  day: string;
  time: string;
  timezone: string;
}): { ok: true; cron: string; timezone: string } | { ok: false; errors: WeeklyScheduleErrors } {
  const errors: WeeklyScheduleErrors = {};
  let day: number | 'daily' = 'daily';
  if (input.day === 'daily') day = 'daily';
  else if (/^[0-6]$/.test(input.day)) day = Number(input.day);
  else errors.day = 'Choose a day of the week, or every day';
  if (!TIME.test(input.time)) errors.time = 'Time must be HH:MM on a 24-hour clock, such as 09:00';
  if (!isTimeZone(input.timezone)) errors.timezone = 'Choose a time zone from the list, such as America/Chicago';
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, cron: weeklyCron({ day, time: input.time }), timezone: input.timezone };
}

/** `{ day: 2, time: '09:00' }` → `0 9 * * 2`. */
export function weeklyCron(s: WeeklySchedule): string {
  const m = TIME.exec(s.time);
  if (!m) throw new Error(`Invalid time ${s.time}`);
  return `${Number(m[2])} ${Number(m[1])} * * ${s.day === 'daily' ? '*' : s.day}`;
}

/** The weekly schedule a cron stands for, when it is one this control can show (else null: a custom cron). */
export function weeklyOf(cron: string): WeeklySchedule | null {
  const m = /^(\d{1,2}) (\d{1,2}) \* \* (\*|[0-7])$/.exec(cron.trim().replace(/\s+/g, ' '));
  if (!m) return null;
  const minute = Number(m[1]);
  const hour = Number(m[2]);
  if (minute > 59 || hour > 23) return null;
  const time = `${String(hour).padStart(2, '0')}:${String(minute).padStart(2, '0')}`;
  return { day: m[3] === '*' ? 'daily' : Number(m[3]) % 7, time };
}

/** "every Tuesday at 09:00, America/Chicago"; a cron this control cannot express is shown as it is. */
export function describeSchedule(cron: string, timezone: string): string {
  const w = weeklyOf(cron);
  if (!w) return `cron "${cron}", ${timezone}`;
  return `${w.day === 'daily' ? 'every day' : `every ${WEEKDAYS[w.day]}`} at ${w.time}, ${timezone}`;
}

/** The next `count` firings: the instant and how it reads in the schedule's zone. */
export function nextSendTimes(
  cron: string,
  timezone: string,
  count: number,
  from: Date = new Date(),
): { at: Date; local: string }[] {
  const it = CronExpressionParser.parse(cron, { tz: timezone, currentDate: from });
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone: timezone,
    weekday: 'long',
    day: 'numeric',
    month: 'long',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short',
  });
  return Array.from({ length: count }, () => {
    const at = it.next().toDate();
    return { at, local: fmt.format(at) };
  });
}

function zoneOffsetMs(at: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(at));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return asUtc - Math.floor(at / 1000) * 1000;
}

/**
 * A wall-clock time in a zone (a datetime-local input, `2026-12-01T09:00`) → the instant. A time
 * skipped by a DST change moves forward by the gap; null for input that is no such time.
 */
export function zonedLocalToUtc(local: string, timeZone: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(local);
  if (!m || !isTimeZone(timeZone)) return null;
  const [y, mo, d, h, mi] = m.slice(1).map(Number);
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  const check = new Date(wall);
  if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59) return null;
  const first = wall - zoneOffsetMs(wall, timeZone);
  return new Date(wall - zoneOffsetMs(first, timeZone));
}

/** An instant as a datetime-local value in a zone (minutes). */
export function localInputValue(at: Date, timeZone: string): string {
  const local = new Date(at.getTime() + zoneOffsetMs(at.getTime(), timeZone));
  return local.toISOString().slice(0, 16);
}
