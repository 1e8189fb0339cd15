/**
 * `node dist/bench/profile-summary.js FILE.cpuprofile [top]` — where a child's CPU went, from the
 * V8 profiles `npm run bench -- --profile` leaves in its log folder: self time by package (or app
 * folder) and the hottest functions, plus inclusive time of a few functions worth watching.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function area(url: string): string {
  if (!url) return '(native/idle)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  const app = /\/dist\/((?:apps|libs)\/[^/]+)/.exec(url);
  if (app) return app[1];
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '').slice(-60);
}

export function summarise(path: string, top = 25): string {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++)
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = [...self.entries()]
    .filter(([id]) => ['(idle)', '(program)'].includes(byId.get(id)!.callFrame.functionName))
    .reduce((a, [, t]) => a + t, 0);
  const busy = total - idle;

  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName;
    if (name === '(idle)' || name === '(program)') continue;
    const a = name === '(garbage collector)' ? '(garbage collector)' : area(n.callFrame.url);
    byArea.set(a, (byArea.get(a) ?? 0) + t);
    const fn = `${name || '(anonymous)'} ${area(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + t);
  }
  // Inclusive time of every function name (each sample counted once per name on its stack).
  const inclusive = new Map<string, number>();
  for (const [id, t] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const key = `${f.functionName || '(anonymous)'} ${area(f.url)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + t);
    }
  }
  const pct = (t: number) => `${((100 * t) / busy).toFixed(1).padStart(5)}%`;
  const lines = [
    `${path}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(1)} s on CPU`,
    '',
    'self time by package / app folder (% of CPU time):',
    ...[...byArea.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([k, t]) => `  ${pct(t)}  ${k}`),
    '',
    'hottest functions (self):',
    ...[...byFn.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, t]) => `  ${pct(t)}  ${k}`),
    '',
    'inclusive time of selected functions:',
    ...[...inclusive.entries()]
      .filter(([k]) =>
        /^(sendBatch|deliver|personalize|renderIssue|compileMjml|build|_sendCommand|sendMail|claim|finish|query|subscribe|import|importChunk|check|validZone|transform|validate|parse|encode|wrap|createHmac|emailHash|signToken|acquire) /.test(
          k,
        ),
      )
      .sort((a, b) => b[1] - a[1])
      .slice(0, 30)
      .map(([k, t]) => `  ${pct(t)}  ${k}`),
  ];
  return lines.join('\n');
}

const [file, top] = process.argv.slice(2);
if (file) process.stdout.write(`${summarise(file, top ? Number(top) : 25)}\n`);
