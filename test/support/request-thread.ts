import { Worker } from 'node:worker_threads';

export interface PlainRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export interface PlainResponse {
  status: number;
  text: string;
}

/** Plain JavaScript run in the thread: fetch each request, `width` at a time, answers in order. */
const THREAD = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', async ({ id, requests, width }) => {
  const out = new Array(requests.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < requests.length) {
      const i = next++;
      const r = requests[i];
      try {
        const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body, redirect: 'manual' });
        out[i] = { status: res.status, text: (await res.text()).slice(0, 300) };
      } catch (err) {
        out[i] = { status: 0, text: String(err && err.cause ? err.cause : err) };
      }
    }
  }));
  parentPort.postMessage({ id, out });
});
`;

/**
 * Sends many requests from a thread of their own, so the client's work does not share the event
 * loop of the in-process api it is testing (about twice the requests per second on two cores).
 */
export class RequestThread {
  private readonly worker = new Worker(THREAD, { eval: true });
  private seq = 0;

  send(requests: PlainRequest[], width = 32): Promise<PlainResponse[]> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const onMessage = (m: { id: number; out: PlainResponse[] }) => {
        if (m.id !== id) return;
        this.worker.off('message', onMessage);
        this.worker.off('error', reject);
        resolve(m.out);
      };
      this.worker.on('message', onMessage);
      this.worker.once('error', reject);
      this.worker.postMessage({ id, requests, width });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
