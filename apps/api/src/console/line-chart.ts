/** A small server-rendered line chart (inline SVG, no script): the overview's growth per newsletter. */

export interface ChartPoint {
  label: string;
  value: number;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** Whole-number axis ticks: a step of 1, 2 or 5 times a power of ten, about four steps up to `max` or more. */
export function axis(max: number): { top: number; step: number } {
  const rough = Math.max(max, 1) / 4;
  const pow = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(1, ([1, 2, 5, 10].find((m) => m * pow >= rough) ?? 10) * pow);
  return { top: step * Math.max(1, Math.ceil(max / step)), step };
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * Drawing sizes. The SVG scales to its card, and its text with it: each size is drawn about as
 * wide as the card it is shown in (`wide` from a tablet up, `narrow` on a phone, switched by the
 * page's CSS), so 12-13 px labels stay 12-13 px rather than shrinking to 6.
 */
const SIZES = {
  wide: { W: 400, H: 220, left: 44, right: 14, font: 12, labelGap: 44 },
  narrow: { W: 290, H: 210, left: 38, right: 12, font: 13, labelGap: 62 },
} as const;

export type ChartSize = keyof typeof SIZES;

/**
 * The SVG markup of a line chart over `points` (oldest first). Every text is escaped here; the
 * caller embeds it unescaped. `id` makes the title/description ids unique on the page. Week labels
 * that would overlap are thinned out from the newest backwards (the last one always shows).
 * `describe` says what the points are (default: active subscribers) for the chart's description.
 */
export function lineChartSvg(
  id: string,
  title: string,
  points: ChartPoint[],
  size: ChartSize = 'wide',
  describe: (first: ChartPoint, last: ChartPoint) => string = (a, b) =>
    `From ${fmt(a.value)} to ${fmt(b.value)} active subscribers between ${a.label} and ${b.label}.`,
): string {
  const { W, H, left, right, font, labelGap } = SIZES[size];
  const top = 16;
  const bottom = 36;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const { top: max, step } = axis(Math.max(0, ...points.map((p) => p.value)));
  const x = (i: number) => left + (points.length <= 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const r = (n: number) => Math.round(n * 10) / 10;
  const safeId = id.replace(/[^A-Za-z0-9_-]/g, '-') + (size === 'wide' ? '' : `-${size}`);
  const spacing = points.length <= 1 ? plotW : plotW / (points.length - 1);
  const every = Math.max(1, Math.ceil(labelGap / spacing));
  const desc = points.length === 0 ? 'No data.' : describe(points[0], points[points.length - 1]);

  const ticks: number[] = [];
  for (let v = 0; v <= max; v += step) ticks.push(v);
  const grid = ticks
    .map((v) => {
      const gy = r(y(v));
      return (
        `<line x1="${left}" x2="${W - right}" y1="${gy}" y2="${gy}" stroke="#d5dde3" stroke-width="1"/>` +
        `<text x="${left - 6}" y="${gy + 4}" text-anchor="end" font-size="${font}" fill="#4a5866">${esc(fmt(v))}</text>`
      );
    })
    .join('');
  const labels = points
    .map((p, i) =>
      (points.length - 1 - i) % every === 0
        ? `<text x="${r(x(i))}" y="${H - 12}" text-anchor="middle" font-size="${font}" fill="#4a5866">${esc(p.label)}</text>`
        : '',
    )
    .join('');
  const line = points.map((p, i) => `${r(x(i))},${r(y(p.value))}`).join(' ');
  const area =
    points.length > 1
      ? `<polygon points="${r(x(0))},${top + plotH} ${line} ${r(x(points.length - 1))},${top + plotH}" fill="#0b6e4f" fill-opacity="0.08"/>`
      : '';
  const dots = points
    .map(
      (p, i) =>
        `<circle cx="${r(x(i))}" cy="${r(y(p.value))}" r="4" fill="#0b6e4f"><title>${esc(p.label)}: ${esc(fmt(p.value))}</title></circle>`,
    )
    .join('');
  return (
    `<svg class="${size === 'wide' ? 'chart' : `chart-${size}`}" id="chart-${safeId}" viewBox="0 0 ${W} ${H}" width="100%" preserveAspectRatio="xMidYMid meet" role="img" ` +
    `aria-labelledby="chart-${safeId}-title chart-${safeId}-desc" xmlns="http://www.w3.org/2000/svg">` +
    `<title id="chart-${safeId}-title">${esc(title)}</title><desc id="chart-${safeId}-desc">${esc(desc)}</desc>` +
    grid +
    labels +
    area +
    (points.length > 1
      ? `<polyline points="${line}" fill="none" stroke="#0b6e4f" stroke-width="2.5" stroke-linejoin="round"/>`
      : '') +
    dots +
    `</svg>`
  );
}
