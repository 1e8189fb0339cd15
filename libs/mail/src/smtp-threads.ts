import { types } from 'node:util';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ROOT_DIR } from '#core/paths.js';
import type { SendPermits } from './send-permits.js';
import { SLOT_MS } from './send-rate-limiter.service.js';
import type { PoolOptions, ThreadError, ThreadInit, ToMain, ToThread } from './smtp-thread-protocol.js';

/** How a sending thread starts: the build's JavaScript (the test setup points it at the TypeScript source). */
export const smtpThreadEntry = {
  start: (init: ThreadInit): Worker =>
    new Worker(join(ROOT_DIR, 'dist', 'libs', 'mail', 'src', 'smtp-thread.js'), { workerData: init }),
};

/** An SMTP failure reported by a thread, with the fields the bounce and retry checks read. */
export class SmtpThreadError extends Error {
  readonly code?: string;
  readonly responseCode?: number;
  readonly response?: string;
  constructor(e: ThreadError) {
    super(e.message);
    this.name = 'SmtpThreadError';
    this.code = e.code;
    this.responseCode = e.responseCode;
    this.response = e.response;
  }
}

interface Pending {
  resolve: () => void;
  reject: (err: unknown) => void;
  permits?: SendPermits;
  /** The permit's own failure, reported as it is rather than as the thread's copy of its message. */
  permitError?: unknown;
  thread: Slot;
}

interface Slot {
  worker: Worker;
  /** Resolves when `worker` has exited. */
  exited: Promise<void>;
  connections: number;
  inFlight: number;
  init: ThreadInit;
}

/**
 * Bulk mail sent from worker threads, each running an `SmtpPool` of its own (`SMTP_POOL_SIZE`
 * connections shared out between them). One thread's SMTP work
 * (dot-stuffing, the socket writes, the replies) costs about as much CPU per message as everything else a digest does per
 * message: on the main thread the two queue behind each other, and a worker sends no faster than
 * one core allows. The main thread still builds every message (into a sender's shared buffer,
 * which the thread reads in place) and holds its send permits: a message goes to a thread with a
 * permit reserved ahead, and when that one went stale the thread asks the main thread for another.
 */
export class SmtpThreads {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closing = false;

  constructor(options: PoolOptions, count: number) {
    const n = Math.max(1, Math.min(count, options.maxConnections));
    for (let i = 0; i < n; i += 1) {
      const connections = Math.floor(options.maxConnections / n) + (i < options.maxConnections % n ? 1 : 0);
      const init: ThreadInit = {
        role: 'smtp-thread',
        permitGraceMs: SLOT_MS,
        options: { ...options, maxConnections: connections },
      };
      const worker = this.start(init);
      const slot: Slot = { worker, exited: Promise.resolve(), connections, inFlight: 0, init };
      this.watch(slot);
      this.slots.push(slot);
    }
  }

  get threads(): number {
    return this.slots.length;
  }

  private start(init: ThreadInit): Worker {
    const worker = smtpThreadEntry.start(init);
    // Held only while a message is out (see `send`): an idle thread does not keep the process up.
    worker.unref();
    return worker;
  }

  private watch(slot: Slot): void {
    const worker = slot.worker;
    slot.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: ToMain) => this.onMessage(m));
    // A thread that stopped fails its messages (transient: the batch retries them) and is replaced.
    worker.on('error', (err) => this.lost(slot, worker, err));
    worker.on('exit', (code) => this.lost(slot, worker, new Error(`SMTP thread exited (code ${code})`)));
  }

  private lost(slot: Slot, worker: Worker, err: Error): void {
    if (slot.worker !== worker) return;
    for (const [id, p] of this.pending) {
      if (p.thread !== slot) continue;
      this.pending.delete(id);
      this.settled(slot);
      p.reject(new Error(`SMTP thread stopped while sending: ${err.message}`));
    }
    if (this.closing) return;
    slot.worker = this.start(slot.init);
    this.watch(slot);
  }

  private settled(slot: Slot): void {
    slot.inFlight -= 1;
    if (slot.inFlight === 0) slot.worker.unref();
  }

  private onMessage(m: ToMain): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    const slot = p.thread;
    if (m.t === 'take-permit') {
      const post = (msg: ToThread) => slot.worker.postMessage(msg);
      if (!p.permits) return post({ t: 'permit', id: m.id });
      p.permits.take().then(
        () => post({ t: 'permit', id: m.id }),
        (err: unknown) => {
          p.permitError = err;
          post({ t: 'no-permit', id: m.id, message: err instanceof Error ? err.message : String(err) });
        },
      );
      return;
    }
    this.pending.delete(m.id);
    this.settled(slot);
    if (m.t === 'sent') p.resolve();
    else p.reject(p.permitError ?? new SmtpThreadError(m.error));
  }

  /** The thread with the fewest messages out per connection. */
  private pick(): Slot {
    let best = this.slots[0];
    for (const s of this.slots) if (s.inFlight / s.connections < best.inFlight / best.connections) best = s;
    return best;
  }

  /**
   * Sends `raw` from a thread; resolves once the server accepted it. Bytes in shared memory (a
   * `MessageBuffer`'s) are read there in place and must stay as they are until then; others are
   * copied. With `permits`, one is reserved before the message goes to the thread (when they can
   * reserve), which uses it when it is due and takes another only when it could not in time.
   */
  async send(raw: Buffer, envelope: { from: string; to: string[] }, permits?: SendPermits): Promise<void> {
    if (this.closing) throw new Error('SMTP threads are closed');
    const due = permits?.reserve ? await permits.reserve() : undefined;
    if (this.closing) throw new Error('SMTP threads are closed');
    const slot = this.pick();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, permits, thread: slot });
      if (slot.inFlight === 0) slot.worker.ref();
      slot.inFlight += 1;
      if (types.isSharedArrayBuffer(raw.buffer)) {
        const msg: ToThread = {
          t: 'send',
          id,
          bytes: raw.buffer,
          offset: raw.byteOffset,
          length: raw.length,
          envelope,
          permitted: !!permits,
          due,
        };
        slot.worker.postMessage(msg);
      } else {
        const copy = new ArrayBuffer(raw.length);
        raw.copy(new Uint8Array(copy));
        const msg: ToThread = {
          t: 'send',
          id,
          bytes: copy,
          offset: 0,
          length: raw.length,
          envelope,
          permitted: !!permits,
          due,
        };
        slot.worker.postMessage(msg, [copy]);
      }
    });
  }

  /** Closes every thread's pool (messages still out fail); resolves once the threads are gone. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.slots.map(async (slot) => {
        slot.worker.postMessage({ t: 'close' } satisfies ToThread);
        const timer = setTimeout(() => void slot.worker.terminate(), 5_000);
        await slot.exited;
        clearTimeout(timer);
      }),
    );
  }
}
