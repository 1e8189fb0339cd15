/**
 * A discard SMTP sink, run as its own child process (`node dist/bench/sink.js`) so that its CPU is
 * not the benchmark's. It accepts every message, reads and drops the bytes, and records the time
 * each message was accepted. The parent talks to it over the IPC channel:
 *
 *   → { cmd: 'mark', id }                ← { type: 'mark', id, count }      (messages accepted so far)
 *   → { cmd: 'wait', target, id }        ← { type: 'reached', id, count, at } once count ≥ target
 *   → { cmd: 'times', from, id }         ← { type: 'times', id, times }     (accept times of messages from..count)
 *   → { cmd: 'capture', id }             ← { type: 'captured', id, raw }    (the next message, base64)
 *   → { cmd: 'stop' }                    the server closes and the process exits
 */
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { SMTPServer } from 'smtp-server';

type Cmd =
  | { cmd: 'mark'; id: number }
  | { cmd: 'wait'; target: number; id: number }
  | { cmd: 'times'; from: number; id: number }
  | { cmd: 'capture'; id: number }
  | { cmd: 'stop' };

const now = () => performance.timeOrigin + performance.now();
let count = 0;
/** Accept times (epoch ms, sub-millisecond precision), grown on demand. */
let times = new Float64Array(1 << 16);
const waiters: { target: number; id: number }[] = [];
let captureId: number | null = null;

function send(msg: unknown): void {
  if (process.send) process.send(msg);
}

function accepted(raw: Buffer[] | null): void {
  const at = now();
  if (count >= times.length) {
    const bigger = new Float64Array(times.length * 2);
    bigger.set(times);
    times = bigger;
  }
  times[count] = at;
  count += 1;
  if (raw && captureId !== null) {
    send({ type: 'captured', id: captureId, raw: Buffer.concat(raw).toString('base64') });
    captureId = null;
  }
  for (let i = waiters.length - 1; i >= 0; i--) {
    if (count >= waiters[i].target) {
      send({ type: 'reached', id: waiters[i].id, count, at });
      waiters.splice(i, 1);
    }
  }
}

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  disableReverseLookup: true,
  logger: false,
  size: 10 * 1024 * 1024,
  onData(stream, _session, cb) {
    const keep: Buffer[] | null = captureId !== null ? [] : null;
    stream.on('data', (chunk: Buffer) => keep?.push(chunk));
    stream.on('end', () => {
      accepted(keep);
      cb();
    });
  },
});

process.on('message', (m: Cmd) => {
  switch (m.cmd) {
    case 'mark':
      send({ type: 'mark', id: m.id, count });
      break;
    case 'wait':
      if (count >= m.target) send({ type: 'reached', id: m.id, count, at: times[m.target - 1] });
      else waiters.push({ target: m.target, id: m.id });
      break;
    case 'times':
      send({ type: 'times', id: m.id, times: Array.from(times.subarray(m.from, count)) });
      break;
    case 'capture':
      captureId = m.id;
      break;
    case 'stop':
      server.close(() => process.exit(0));
      setTimeout(() => process.exit(0), 2000).unref();
      break;
  }
});
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  send({ type: 'ready', port: (server.server.address() as AddressInfo).port });
});
