import { DateTime, IANAZone } from 'luxon';

/** Local-time delivery: a digest goes out at the same wall-clock time in each reader's own zone, in waves. */

/** A local wall-clock time, minute precision: 'YYYY-MM-DDTHH:mm'. */
export type WallClock = string;

/** The zone whose clocks are first to reach any wall-clock time (UTC+14, Kiribati's Line Islands). */
export const EARLIEST_ZONE = 'Etc/GMT-14';
/** The zone whose clocks are last to reach any wall-clock time (UTC−12). */
export const LATEST_ZONE = 'Etc/GMT+12';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const WALL =
  /^((\d{4})-(\d{2})-(\d{2})[T ](?:[01]\d|2[0-3]):[0-5]\d)(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?$/;

/**
 * Parses sendAt given for local delivery: 'YYYY-MM-DDTHH:mm' (or a space for the T), optional ':ss'
 * and fraction, optional 'Z' or ±hh:mm (±hhmm) which are IGNORED (the digits are the wall clock). Returns null when it is not such a string
 * or not a real calendar date/time (2026-02-30, 24:00). Seconds are dropped (minute precision).
 */
export function parseWallClock(input: unknown): WallClock | null {
  if (typeof input !== 'string' || input.length > 40) return null;
  const m = WALL.exec(input);
  if (!m) return null;
  // The pattern keeps hours to 00-23 (Luxon would take 24:00); Luxon rejects 2026-02-30.
  const [year, month, day] = m.slice(2, 5).map(Number);
  if (!DateTime.fromObject({ year, month, day }, { zone: 'utc' }).isValid) return null;
  return m[1].replace(' ', 'T');
}

function ianaZone(zone: string): IANAZone {
  if (typeof zone !== 'string' || !IANAZone.isValidZone(zone)) throw new Error(`Unknown time zone: ${String(zone)}`);
  return IANAZone.create(zone);
}

/** The wall clock of an instant in a zone ('YYYY-MM-DDTHH:mm'). */
export function wallClockAt(instant: Date, zone: string): WallClock {
  const at = DateTime.fromJSDate(instant, { zone: ianaZone(zone) });
  if (!at.isValid) throw new Error(`Invalid instant: ${String(instant)}`);
  return at.toFormat("yyyy-MM-dd'T'HH:mm");
}

/** '+05:30', '-03:30', '+00:00': the zone's UTC offset at the instant. */
export function utcOffsetOf(instant: Date, zone: string): string {
  const minutes = Math.round(ianaZone(zone).offset(instant.getTime()));
  const abs = Math.abs(minutes);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${minutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/**
 * The instant at which a zone's clocks show this wall-clock time. A time skipped by a DST change
 * (02:30 on a spring-forward day) is taken as the same length of time after the change (like Temporal's
 * 'compatible': 02:30 → 03:30 for a one-hour gap); a time that happens twice (fall back) is the first
 * (earlier) of the two. Unknown zone → throws Error.
 */
export function localInstant(wall: WallClock, zone: string): Date {
  const tz = ianaZone(zone);
  const clock = parseWallClock(wall);
  if (!clock) throw new Error(`Not a wall-clock time: ${String(wall)}`);
  // The wall digits read as if UTC; the zone's offsets a day either side bracket any change near it.
  const local = DateTime.fromISO(clock, { zone: 'utc' }).toMillis();
  const before = tz.offset(local - DAY);
  const after = tz.offset(local + DAY);
  // Not Luxon's own resolution: for a repeated time it picks whichever offset the zone has *today*.
  const fits = [local - before * MINUTE, local - after * MINUTE]
    .filter((t) => t + tz.offset(t) * MINUTE === local)
    .sort((a, b) => a - b);
  // No fit: the time is in a gap, so read it with the offset from before the change.
  return new Date(fits[0] ?? local - before * MINUTE);
}

export interface ZoneReaders {
  timezone: string;
  readers: number;
}

export interface Wave {
  /** 0, 1, … in time order */
  wave: number;
  sendAt: Date;
  /** The UTC offset the wave's zones have at sendAt, '+05:30', '-03:30', '+00:00' */
  utcOffset: string;
  /** The zone with most readers in the wave (ties: alphabetical) — what the API shows as the wave's timezone */
  timezone: string;
  /** All zones in the wave, most readers first (ties alphabetical) */
  timezones: string[];
  readers: number;
}

/**
 * Groups zones by the instant their clocks show `wall`: one wave per distinct instant (which on an
 * ordinary day is one per UTC offset; on a DST-change day two zones of one standard offset can fall in
 * two waves). Zones with readers <= 0 are ignored; the same zone given twice is summed. Unknown zones
 * throw. Waves sorted by sendAt.
 */
export function planWaves(wall: WallClock, zones: ZoneReaders[]): Wave[] {
  if (!parseWallClock(wall)) throw new Error(`Not a wall-clock time: ${String(wall)}`);
  const perZone = new Map<string, number>();
  for (const { timezone, readers } of zones) {
    ianaZone(timezone); // unknown zones throw even without readers
    if (Number.isFinite(readers) && readers > 0) perZone.set(timezone, (perZone.get(timezone) ?? 0) + readers);
  }
  const byInstant = new Map<number, [string, number][]>();
  for (const [zone, readers] of perZone) {
    const at = localInstant(wall, zone).getTime();
    byInstant.set(at, [...(byInstant.get(at) ?? []), [zone, readers]]);
  }
  return [...byInstant]
    .sort(([a], [b]) => a - b)
    .map(([at, members], wave) => {
      members.sort(([za, a], [zb, b]) => b - a || (za < zb ? -1 : za > zb ? 1 : 0));
      const sendAt = new Date(at);
      // A zone read in a DST gap can share an instant with a zone of another offset: the main zone's counts.
      return {
        wave,
        sendAt,
        utcOffset: utcOffsetOf(sendAt, members[0][0]),
        timezone: members[0][0],
        timezones: members.map(([zone]) => zone),
        readers: members.reduce((sum, [, n]) => sum + n, 0),
      };
    });
}
