/**
 * One SMTP sending thread (see `SmtpThreads`): a pool of nodemailer SMTP connections of its own,
 * fed raw messages by the main thread. It imports nothing of ours, so that it starts with
 * nodemailer alone.
 *
 * The messages arrive built (CRLF lines, every header in place), so the thread hands their bytes
 * to nodemailer's `SMTPConnection` (the connection nodemailer's own pool uses) rather than to a
 * pooled transporter: per message, that pool also builds a mail object and a MIME node (random
 * boundary, message id) and streams the bytes through a pipeline of its own (a PassThrough, a
 * last-newline check, abort signals) in 16 kB chunks; on 40 kB messages that is about two fifths
 * of its CPU time. The dot-stuffing stream, the one per-byte pass, runs either way.
 *
 * What the thread keeps of the pool's behaviour: connections opened on demand up to its share of
 * `SMTP_POOL_SIZE`, each reused for up to `maxMessages` messages; a connection the server closed
 * while idle is dropped; after a refused envelope or message (not a 421) the connection is reset
 * and kept; a message whose connection was already gone when it was handed over goes out on
 * another.
 *
 * A gated message (a digest's) goes out once its connection is ready, at its send permit's time:
 * the permit reserved ahead that came with it while that is at most `aheadGraceMs` past, else a
 * new one from the main thread's gate.
 */
import { connect, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import SMTPConnection, { type SMTPConnectionOptions } from 'nodemailer/lib/smtp-connection/index.js';
import type { ThreadError, ThreadInit, ToMain, ToThread } from './smtp-thread-protocol.js';

const port = parentPort;
if (!port) throw new Error('smtp-thread runs as a worker thread');
const init = workerData as ThreadInit;
const opts = init.options;

function post(m: ToMain): void {
  port!.postMessage(m);
}

interface Job {
  id: number;
  raw: Buffer;
  envelope: { from: string; to: string[]; size: number };
  gated: boolean;
  /** A permit reserved ahead: when it is due (see `PermitAhead`). */
  due: number | undefined;
  /** Handed over again once already: a connection found gone before a byte was sent. */
  again: boolean;
}

interface Conn {
  smtp: SMTPConnection;
  messages: number;
  busy: boolean;
  closed: boolean;
}

/** Messages waiting for a connection, oldest first. */
const queue: Job[] = [];
const conns = new Set<Conn>();
let opening = 0;
let closing = false;
/** Gates waiting for the main thread's answer, by message id. */
const gates = new Map<number, { open: () => void; shut: (err: Error) => void }>();

const connectionOptions: SMTPConnectionOptions = {
  host: opts.host,
  port: opts.port,
  secure: opts.secure,
  connectionTimeout: opts.connectionTimeout,
  greetingTimeout: opts.greetingTimeout,
  socketTimeout: opts.socketTimeout,
  logger: false,
};

function threadError(err: unknown): ThreadError {
  const e = (err ?? {}) as { message?: unknown; code?: unknown; responseCode?: unknown; response?: unknown };
  return {
    message: typeof e.message === 'string' ? e.message : String(err),
    code: typeof e.code === 'string' ? e.code : undefined,
    responseCode: typeof e.responseCode === 'number' ? e.responseCode : undefined,
    response: typeof e.response === 'string' ? e.response : undefined,
  };
}

function fail(id: number, err: unknown): void {
  post({ t: 'failed', id, error: threadError(err) });
}

/**
 * A plain connection gets a socket with TCP_NODELAY: Nagle + delayed ACK stalls each message
 * ~40 ms on a reused connection (see MailTransport). SMTPS connects by itself.
 */
function socket(): Promise<Socket | undefined> {
  if (opts.secure) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const s = connect(opts.port, opts.host);
    s.setNoDelay(true);
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error('Connection timeout'), { code: 'ETIMEDOUT' }));
    }, opts.connectionTimeout);
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(Object.assign(e, { code: 'ECONNECTION' }));
    });
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
  });
}

/** A connected, greeted (and logged in) connection. */
async function open(): Promise<Conn> {
  const existing = await socket();
  const smtp = new SMTPConnection(existing ? { ...connectionOptions, connection: existing } : connectionOptions);
  const conn: Conn = { smtp, messages: 0, busy: false, closed: false };
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const done = (err?: unknown) => {
      if (settled) return;
      settled = true;
      if (err) {
        conn.closed = true;
        smtp.close();
        reject(err);
      } else resolve();
    };
    // Errors while sending also reach the send's callback, which decides what they mean.
    smtp.on('error', (err: Error) => {
      done(err);
      drop(conn);
    });
    smtp.once('end', () => {
      done(new Error('Connection closed unexpectedly'));
      drop(conn);
    });
    smtp.connect((err) => {
      if (err) return done(err);
      if (!opts.auth || !smtp.allowsAuth) return done();
      smtp.login(
        { type: 'LOGIN', user: opts.auth.user, credentials: { user: opts.auth.user, pass: opts.auth.pass } },
        (e) => done(e ?? undefined),
      );
    });
  });
  return conn;
}

/** Takes a connection out of the pool (closed by either side, or done with). */
function drop(conn: Conn): void {
  if (conns.delete(conn)) pump();
  if (conn.closed) return;
  conn.closed = true;
  conn.smtp.close();
}

/** Hands waiting messages to idle connections, and opens connections while messages wait. */
function pump(): void {
  if (closing) return;
  for (const conn of conns) {
    if (queue.length === 0) return;
    if (!conn.busy && !conn.closed) send(conn, queue.shift()!);
  }
  while (queue.length > opening && conns.size + opening < opts.maxConnections) {
    opening += 1;
    open().then(
      (conn) => {
        opening -= 1;
        if (closing) return drop(conn);
        conns.add(conn);
        pump();
      },
      (err: unknown) => {
        opening -= 1;
        // Nothing else will take the waiting messages: they fail (a retry sends them).
        if (conns.size === 0 && opening === 0) for (const job of queue.splice(0)) fail(job.id, err);
      },
    );
  }
}

/** The main thread's send permit, asked for now that the message has a connection (see `gated` in mail-transport). */
function gate(id: number): Promise<void> {
  return new Promise((open, shut) => {
    gates.set(id, { open, shut });
    post({ t: 'gate', id });
  });
}

function send(conn: Conn, job: Job): void {
  conn.busy = true;
  const go = () => {
    if (conn.closed) return sent(new Error('Connection closed'), true);
    conn.smtp.send(job.envelope, job.raw, (err) => sent(err, false));
  };
  const sent = (err: (Error & { code?: string; responseCode?: number; command?: string }) | null, gone: boolean) => {
    conn.busy = false;
    if (!err) {
      conn.messages += 1;
      post({ t: 'sent', id: job.id });
      if (conn.messages >= opts.maxMessages) drop(conn);
      return pump();
    }
    // The connection was gone before a byte of the message was written (the server ended it
    // while idle): the message goes out on another, once.
    if ((gone || err.command === 'API') && !job.again) {
      job.again = true;
      drop(conn);
      queue.unshift(job);
      return pump();
    }
    fail(job.id, err);
    if ((err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && err.responseCode !== 421 && !conn.closed) {
      // The server refused this message; the session is reset and the connection kept.
      conn.busy = true;
      conn.smtp.reset((e) => {
        conn.busy = false;
        if (e) drop(conn);
        pump();
      });
      return;
    }
    drop(conn);
  };
  if (!job.gated) return go();
  if (job.due !== undefined && Date.now() - job.due <= init.aheadGraceMs) {
    // The permit came with the message and is still good: at its time, or now if that has passed.
    const wait = job.due - Date.now();
    if (wait >= 1) setTimeout(go, wait);
    else go();
    return;
  }
  gate(job.id).then(go, (err: Error) => {
    conn.busy = false;
    fail(job.id, err);
    pump();
  });
}

port.on('message', (m: ToThread) => {
  switch (m.t) {
    case 'send': {
      if (closing) {
        fail(m.id, new Error('SMTP threads are closed'));
        return;
      }
      queue.push({
        id: m.id,
        raw: Buffer.from(m.bytes, m.offset, m.length),
        envelope: { from: m.envelope.from, to: m.envelope.to, size: m.length },
        gated: m.gated,
        due: m.due,
        again: false,
      });
      pump();
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
      closing = true;
      for (const job of queue.splice(0)) fail(job.id, new Error('SMTP threads are closed'));
      for (const conn of [...conns]) {
        conns.delete(conn);
        conn.closed = true;
        conn.smtp.quit();
      }
      port.close();
  }
});
