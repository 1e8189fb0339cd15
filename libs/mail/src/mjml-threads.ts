import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ROOT_DIR } from '#core/paths.js';
import { compileMjmlHere, type MjmlValidation } from './mjml-compile.js';
import type { MjmlAnswer, MjmlRequest } from './mjml-thread.js';

/** How the render thread starts (the tests load its TypeScript source instead). */
export const mjmlThreadEntry = {
  start: (): Worker => new Worker(join(ROOT_DIR, 'dist', 'libs', 'mail', 'src', 'mjml-thread.js')),
};

/**
 * One thread that compiles MJML off the main thread: a digest's topic variants (up to 64 renders
 * of ~10 ms) render there while the main thread goes on claiming and sending. Started on first
 * use, unreferenced while idle (it never keeps the process up); a thread that fails or exits
 * is replaced, and a render it could not do is done in this thread instead.
 */
export class MjmlThread {
  private worker: Worker | null = null;
  private next = 0;
  private readonly pending = new Map<
    number,
    { resolve: (r: { html: string; text: string }) => void; reject: (e: Error) => void }
  >();

  async compile(source: string, validation: MjmlValidation): Promise<{ html: string; text: string }> {
    try {
      return await this.send({ id: ++this.next, source, validation });
    } catch (err) {
      // MJML's own errors are the same here; a thread that failed to start or died is not.
      if (err instanceof MjmlThreadError) return compileMjmlHere(source, validation);
      throw err;
    }
  }

  private send(m: MjmlRequest): Promise<{ html: string; text: string }> {
    let worker: Worker;
    try {
      worker = this.thread();
    } catch (err) {
      return Promise.reject(new MjmlThreadError(err instanceof Error ? err.message : String(err)));
    }
    return new Promise((resolve, reject) => {
      this.pending.set(m.id, { resolve, reject });
      worker.ref();
      worker.postMessage(m);
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = mjmlThreadEntry.start();
    worker.unref();
    worker.on('message', (a: MjmlAnswer) => {
      const p = this.pending.get(a.id);
      if (!p) return;
      this.pending.delete(a.id);
      if (this.pending.size === 0) worker.unref();
      if ('error' in a) p.reject(new Error(a.error));
      else p.resolve({ html: a.html, text: a.text });
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = null;
      for (const p of this.pending.values()) p.reject(new MjmlThreadError(err.message));
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`render thread exited (${code})`)));
    this.worker = worker;
    return worker;
  }

  /** Stops the thread (renders in flight fall back to this thread). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
  }
}

class MjmlThreadError extends Error {}
