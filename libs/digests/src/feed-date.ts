/**
 * Feed dates: RFC 822/1123 (RSS `pubDate`, with RFC 2822's obsolete forms) and ISO 8601 / W3CDTF
 * (Atom, Dublin Core). Anything else is unreadable. `new Date()` is not used: it reads year
 * `0001` as 2001 and accepts whatever V8 guesses.
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** RFC 822 zone names, in minutes east of UTC. Military letters mean nothing reliable (RFC 2822 §4.3): UTC. */
const ZONES: Record<string, number> = {
  ut: 0,
  utc: 0,
  gmt: 0,
  z: 0,
  est: -300,
  edt: -240,
  cst: -360,
  cdt: -300,
  mst: -420,
  mdt: -360,
  pst: -480,
  pdt: -420,
};

const ISO =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$/i;

const RFC822 =
  /^(?:[A-Za-z]{2,9}\.?,?\s+)?(\d{1,2})[\s-]+([A-Za-z]{3,9})\.?[\s-]+(\d{2,4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*(?:([+-]\d{4}|[+-]\d{2}:\d{2}|[A-Za-z]{1,5}))?(?:\s*\([^)]*\))?$/;

/** A UTC instant from fields, or null when a field is out of range (31 February, 25:00). */
function build(y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number, offsetMin: number) {
  if (mo < 1 || mo > 12 || d < 1 || h > 24 || mi > 59 || s > 60) return null;
  const days = new Date(Date.UTC(2000, mo, 0)).getUTCDate(); // 2000 is a leap year: fixed below
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  if (d > (mo === 2 && !leap ? 28 : days)) return null;
  if (h === 24 && (mi !== 0 || s !== 0)) return null;
  const t = new Date(0);
  // setUTCFullYear, unlike Date.UTC, keeps years 0–99 as they are.
  t.setUTCFullYear(y, mo - 1, d);
  t.setUTCHours(h, mi, Math.min(s, 59), ms);
  return new Date(t.getTime() - offsetMin * 60_000);
}

function offset(zone: string | undefined): number | null {
  if (!zone) return 0; // no zone: UTC, as feedparser assumes
  const m = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone);
  if (m) return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3] ?? 0));
  const z = zone.toLowerCase();
  if (z in ZONES) return ZONES[z];
  return /^[a-ik-z]$/.test(z) ? 0 : null;
}

/** The instant a feed date names, or null when it is in neither format. */
export function parseFeedDate(raw: string): Date | null {
  const v = raw.trim().replace(/\s+/g, ' ');
  let m = ISO.exec(v);
  if (m) {
    const off = offset(m[8]);
    if (off === null) return null;
    const ms = m[7] ? Math.round(Number(`0.${m[7]}`) * 1000) : 0;
    return build(
      Number(m[1]),
      Number(m[2] ?? 1),
      Number(m[3] ?? 1),
      Number(m[4] ?? 0),
      Number(m[5] ?? 0),
      Number(m[6] ?? 0),
      Math.min(ms, 999),
      off,
    );
  }
  m = RFC822.exec(v);
  if (m) {
    const month = MONTHS.indexOf(m[2].slice(0, 3).toLowerCase());
    const off = offset(m[7]);
    if (month < 0 || off === null) return null;
    let year = Number(m[3]);
    // RFC 2822 §4.3: two-digit years 00–49 are 2000–2049, 50–99 and three digits are 1900+.
    if (m[3].length === 2) year += year < 50 ? 2000 : 1900;
    else if (m[3].length === 3) year += 1900;
    return build(year, month + 1, Number(m[1]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0), 0, off);
  }
  return null;
}

/** Feed dates before this are refused: no web feed predates it, and year 1 or 1900 means "unknown". */
export const EARLIEST_FEED_DATE = new Date('1970-01-01T00:00:00Z');
/** How far ahead of the poll a date may be (clock skew, time zones written wrong). */
export const FUTURE_SLACK_MS = 24 * 3600_000;

/** Why a readable date cannot be an article's publication time, or null when it can. */
export function implausible(date: Date, now: Date): string | null {
  if (date.getTime() < EARLIEST_FEED_DATE.getTime()) return `date ${date.toISOString()} is before 1970`;
  if (date.getTime() > now.getTime() + FUTURE_SLACK_MS)
    return `date ${date.toISOString()} is more than a day in the future`;
  return null;
}
