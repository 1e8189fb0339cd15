/**
 * One SMTP sending thread (see `SmtpThreads`): a nodemailer pool of its own, fed raw messages by
 * the main thread. It imports nothing of ours, so that it starts with nodemailer alone.
 */
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import nodemailer, { type TransportOptions } from 'nodemailer';
import type { ThreadInit, ToMain, ToThread } from './smtp-thread-protocol.js';

const port = parentPort;
if (!port) throw new Error('smtp-thread runs as a worker thread');
const init = workerData as ThreadInit;

const transporter = nodemailer.createTransport({
  ...init.options,
  // Nagle + delayed ACK stalls each message ~40 ms on a pooled connection (see MailTransport).
  getSocket: init.options.secure
    ? undefined
    : (_opts: unknown, cb: (err: Error | null, socketOptions?: { connection: Socket }) => void) => {
        const socket = connect(init.options.port, init.options.host);
        socket.setNoDelay(true);
        const onError = (e: Error) => cb(e);
        socket.once('error', onError);
        socket.once('connect', () => {
          socket.removeListener('error', onError);
          cb(null, { connection: socket });
        });
      },
} as TransportOptions);

/** Gates waiting for the main thread's answer, by message id. */
const gates = new Map<number, { open: () => void; shut: (err: Error) => void }>();

function post(m: ToMain): void {
  port!.postMessage(m);
}

/** The bytes, read only once the main thread opened the message's gate (see `gated` in mail-transport). */
function gatedStream(id: number, raw: Buffer): Readable {
  let asked = false;
  return new Readable({
    read() {
      if (asked) return;
      asked = true;
      gates.set(id, {
        open: () => {
          this.push(raw);
          this.push(null);
        },
        shut: (err) => this.destroy(err),
      });
      post({ t: 'gate', id });
    },
  });
}

port.on('message', (m: ToThread) => {
  switch (m.t) {
    case 'send': {
      const raw = Buffer.from(m.bytes, m.offset, m.length);
      transporter
        .sendMail({
          envelope: m.envelope,
          raw: m.gated ? gatedStream(m.id, raw) : raw,
          messageId: m.messageId,
        })
        .then(
          () => post({ t: 'sent', id: m.id }),
          (err: unknown) => {
            gates.delete(m.id);
            const e = (err ?? {}) as { message?: unknown; code?: unknown; responseCode?: unknown; response?: unknown };
            post({
              t: 'failed',
              id: m.id,
              error: {
                message: typeof e.message === 'string' ? e.message : String(err),
                code: typeof e.code === 'string' ? e.code : undefined,
                responseCode: typeof e.responseCode === 'number' ? e.responseCode : undefined,
                response: typeof e.response === 'string' ? e.response : undefined,
              },
            });
          },
        );
      return;
    }
    case 'open':
    case 'shut': {
      const gate = gates.get(m.id);
      if (!gate) return;
      gates.delete(m.id);
      if (m.t === 'open') gate.open();
      else gate.shut(new Error(m.message));
      return;
    }
    case 'close':
      transporter.close();
      port.close();
  }
});
