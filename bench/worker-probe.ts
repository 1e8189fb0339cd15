/**
 * Preloaded into a benchmark's worker or api child (`node --import ./dist/bench/worker-probe.js
 * dist/apps/worker/src/main.js`). It imports the very module instance the app uses (same file
 * URL), so it can answer the parent over IPC with MailRenderer.mjmlCalls, the process's memory
 * figures and how busy its main thread has been. It changes nothing in the app.
 *
 * `--import` preloads into every thread of the process, the worker's SMTP sending threads too:
 * there it loads nothing (the renderer's module graph, mjml and all, held ~29 MB of live heap in
 * each sending thread and inflated the worker's measured RSS by as much).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

function statusKb(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

if (isMainThread && process.send) {
  const { MailRenderer } = await import('#mail/mail-renderer.service.js');
  process.on('message', (m: { cmd?: string; id?: number; gc?: boolean }) => {
    if (m.cmd !== 'probe') return;
    // Only when the parent asks, and only with --expose-gc: the live heap, without GC slack.
    if (m.gc) (globalThis as { gc?: () => void }).gc?.();
    process.send?.({
      type: 'probe',
      id: m.id,
      mjmlCalls: MailRenderer.mjmlCalls,
      rssKb: statusKb('VmRSS'),
      hwmKb: statusKb('VmHWM'),
      heapUsed: process.memoryUsage().heapUsed,
      elu: performance.eventLoopUtilization(),
    });
  });
  // The IPC channel must not keep a stopped app alive.
  (process.channel as { unref?: () => void } | undefined)?.unref?.();
}
