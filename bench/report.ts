/**
 * Writes the results of a run into BENCHMARKS.md. Each kind of run (quick, --n 100000, a subset…)
 * owns one block between markers; a new run of the same kind replaces its block and leaves the
 * rest of the file (method, findings, other runs) as it is.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

export interface Triple {
  name: string;
  value: number | null;
  /** `>=0.8`, `<=1.2`, `<50`, `=1`, `0.95..1`, or `-` when the figure is informational. */
  target: string;
  note?: string;
}

export function meets(t: Triple): boolean | null {
  if (t.value === null || Number.isNaN(t.value)) return false;
  const v = t.value;
  const m = /^(>=|<=|<|>|=)(-?[\d.]+)$/.exec(t.target);
  if (m) {
    const x = Number(m[2]);
    return { '>=': v >= x, '<=': v <= x, '<': v < x, '>': v > x, '=': v === x }[m[1]] ?? null;
  }
  const r = /^(-?[\d.]+)\.\.(-?[\d.]+)$/.exec(t.target);
  if (r) return v >= Number(r[1]) && v <= Number(r[2]);
  return null;
}

export function formatValue(v: number | null): string {
  if (v === null || Number.isNaN(v)) return 'n/a';
  if (Math.abs(v) >= 100) return String(Math.round(v));
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return String(Number(v.toPrecision(3)));
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return 'n/a';
  }
}

export function machine(extra: { postgres: string; redis: string }): string[] {
  return [
    `- date: ${new Date().toISOString()}`,
    `- nproc: ${sh('nproc', [])} (${cpus()[0]?.model ?? 'unknown CPU'}); load average at start ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
    '- free -h:',
    '',
    '```',
    sh('free', ['-h']),
    '```',
    '',
    `- node ${process.version}; ${extra.postgres}; Redis ${extra.redis}`,
  ];
}

const HEADER = `# Benchmarks

\`npm run bench\` (\`-- --quick\`, \`-- --n 100000\`, \`-- --only digest,rate\` …) rebuilds, runs the
benchmarks below side by side on this machine and refreshes its own results block in this file.
The last lines it prints are \`name value target\` triples.

<!-- bench:results -->
`;

export function writeReport(path: string, key: string, block: string): void {
  const start = `<!-- bench:run:${key}:start -->`;
  const end = `<!-- bench:run:${key}:end -->`;
  let text = existsSync(path) ? readFileSync(path, 'utf8') : HEADER;
  const wrapped = `${start}\n${block.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) {
    text = text.slice(0, i) + wrapped + text.slice(j + end.length);
  } else {
    const anchor = '<!-- bench:results -->';
    const k = text.indexOf(anchor);
    text =
      k >= 0
        ? `${text.slice(0, k + anchor.length)}\n\n${wrapped}\n${text.slice(k + anchor.length)}`
        : `${text.trimEnd()}\n\n${wrapped}\n`;
  }
  writeFileSync(path, text.replace(/\n{3,}/g, '\n\n'));
}
