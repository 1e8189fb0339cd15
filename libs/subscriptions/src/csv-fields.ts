import { isURL } from 'class-validator';
import { normalizeEmail } from './email.js';

/** One imported reader, checked with the same rules as the signup API. */
export interface ImportRow {
  line: number;
  email: string;
  name: string | null;
  topics: string[];
  timezone: string | null;
  consentedAt: Date;
  source: string | null;
}

export interface InvalidLine {
  line: number;
  reason: string;
}

/** The import's columns, in the order the docs give them. */
export const IMPORT_COLUMNS = ['email', 'name', 'topics', 'timezone', 'consented_at', 'source'] as const;
export type ImportColumn = (typeof IMPORT_COLUMNS)[number];

/** Field rules of CreateSubscriptionDto (apps/api), repeated here because libs cannot import apps. */
const LINE_BREAK = /[\r\n\0]/;
const MAX_NAME = 100;
const MAX_TOPICS = 20;
const MAX_TOPIC = 50;
const MAX_SOURCE = 2048;
const URL_OPTIONS = { require_tld: false, protocols: ['http', 'https'], require_protocol: true };

/**
 * A small cache: an import asks about the same few zones, source URLs, topics and times a million
 * times. Bounded in entries and in key length, so that odd long cells cannot fill memory.
 */
function memo<T extends NonNullable<unknown> | null>(check: (v: string) => T): (v: string) => T {
  const seen = new Map<string, T>();
  return (v) => {
    let result = seen.get(v);
    if (result === undefined) {
      result = check(v);
      if (seen.size < 2000 && v.length <= 256) seen.set(v, result);
    }
    return result;
  };
}

/** Building an Intl.DateTimeFormat costs ~50 µs; the API's IsTimeZone asks Intl the same way. */
const validZone = memo((tz) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
});

const validSource = memo((url) => isURL(url, URL_OPTIONS));

/** RFC 3339 / ISO 8601 extended: a date, or a date and time with Z or a numeric offset. */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|[+-]\d{2}(?::?\d{2})?))?$/;

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * A strict ISO 8601 time: `2025-05-01T10:00:00Z`, `2025-05-01T12:00+02:00`, or a date alone
 * (`2025-05-01`, midnight UTC). Anything a server's locale could read differently is refused.
 */
export function parseIsoTime(value: string): Date | null {
  const m = ISO_TIME.exec(value);
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  const ms = m[7] ? Number(m[7].padEnd(3, '0').slice(0, 3)) : 0;
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offset = 0;
  const zone = m[8];
  if (zone && zone !== 'Z' && zone !== 'z') {
    const digits = zone.slice(1).replace(':', '');
    const [oh, om] = [Number(digits.slice(0, 2)), Number(digits.slice(2) || 0)];
    if (oh > 23 || om > 59) return null;
    offset = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0–99 as 1900–1999.
  const t = new Date(0);
  t.setUTCFullYear(year, month - 1, day);
  t.setUTCHours(hour, minute, second, ms);
  return new Date(t.getTime() - offset * 60_000);
}

/** parseIsoTime as a number, so that each row still gets a Date of its own. */
const isoTime = memo((v) => parseIsoTime(v)?.getTime() ?? null);

/** The topics of a cell, or why they are refused. */
const topicList = memo((cell): { topics: string[] } | { reason: string } => {
  const topics = cell
    .split(/[;|]/)
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  if (topics.length > MAX_TOPICS) return { reason: `topics must have at most ${MAX_TOPICS} entries` };
  if (topics.some((t) => t.length > MAX_TOPIC))
    return { reason: `topics entries must be at most ${MAX_TOPIC} characters` };
  return { topics };
});

const CONSENTED_AT =
  'consented_at must be an ISO 8601 time with Z or an offset, such as 2025-05-01T10:00:00Z, or a date such as 2025-05-01 (midnight UTC)';

/** Checks one record's cells (already picked by column); a reason when the row cannot be imported. */
export function checkImportRow(
  cells: Record<ImportColumn, string>,
  line: number,
  now = Date.now(),
): ImportRow | InvalidLine {
  const email = normalizeEmail(cells.email);
  if (!email.ok) return { line, reason: email.reason };

  // Line breaks are refused inside a cell as the API refuses them, even where trimming would drop them.
  for (const column of ['name', 'topics', 'timezone', 'source'] as const) {
    if (LINE_BREAK.test(cells[column])) return { line, reason: `${column} must not contain line breaks` };
  }
  const name = cells.name.trim();
  if (name.length > MAX_NAME) return { line, reason: `name must be at most ${MAX_NAME} characters` };

  const topics = topicList(cells.topics);
  if ('reason' in topics) return { line, reason: topics.reason };

  const tz = cells.timezone.trim();
  if (tz && !validZone(tz)) return { line, reason: 'timezone must be an IANA time zone such as America/Chicago' };

  const rawTime = cells.consented_at.trim();
  if (!rawTime) return { line, reason: 'consented_at is required (an ISO 8601 time such as 2025-05-01T10:00:00Z)' };
  const consentedAt = isoTime(rawTime);
  if (consentedAt === null) return { line, reason: CONSENTED_AT };
  if (consentedAt > now + 86_400_000) return { line, reason: 'consented_at is in the future' };

  const source = cells.source.trim();
  if (source.length > MAX_SOURCE) return { line, reason: `source must be at most ${MAX_SOURCE} characters` };
  if (source && !validSource(source)) return { line, reason: 'source must be an http(s) URL' };

  return {
    line,
    email: email.email,
    name: name || null,
    topics: [...topics.topics], // the cached list is shared
    timezone: tz || null,
    consentedAt: new Date(consentedAt),
    source: source || null,
  };
}
