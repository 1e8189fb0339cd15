/**
 * The SMTP connection pool that bulk mail leaves through (`SmtpPool`), and the TCP_NODELAY socket
 * factory of every Mailroom SMTP connection (`connectSocket`). The pool runs in each sending thread
 * (`SMTP_THREADS` > 0: this file is the thread's entry, see `SmtpThreads`) or in the main thread
 * (`SMTP_THREADS=0`). It imports nothing of ours but types, so that a thread starts with nodemailer
 * alone.
 *
 * The messages arrive built (CRLF lines, every header in place), so the pool hands their bytes to
 * nodemailer's `SMTPConnection` (the connection nodemailer's own pool uses) rather than to a pooled
 * transporter, which per message also builds a mail object and a MIME node and streams the bytes
 * through a pipeline of its own. The dot-stuffing stream, the one per-byte pass, runs either way.
 *
 * What the pool keeps of nodemailer's: connections opened on demand up to `maxConnections`, each
 * reused for up to `maxMessages` messages; a connection the server closed while idle is dropped;
 * after a refused envelope or message (not a 421) the connection is reset and kept; a message whose
 * connection was already gone when it was handed over goes out on another.
 *
 * A message with send permits goes out once its connection is ready, at its permit's time: the
 * permit reserved ahead (`due`) while that is at most `permitGraceMs` past, else one it takes then.
 */
import { connect, type Socket } from 'node:net';
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import SMTPConnection, { type SMTPConnectionOptions } from 'nodemailer/lib/smtp-connection/index.js';
import type { SendPermits } from './send-permits.js';
import type { PoolOptions, ThreadError, ThreadInit, ToMain, ToThread } from './smtp-thread-protocol.js';

/**
 * A plain SMTP connection's socket, with TCP_NODELAY: with Nagle on, each message on a reused
 * connection waits for a delayed ACK. (SMTPS connects by itself; STARTTLS upgrades keep the option.)
 */
export function connectSocket(port: number, host: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host);
    s.setNoDelay(true);
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error('Connection timeout'), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
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

interface Job {
  raw: Buffer;
  envelope: { from: string; to: string[]; size: number };
  permits: SendPermits | undefined;
  /** A permit reserved ahead: when it is due (see `SendPermits.reserve`). */
  due: number | undefined;
  /** Handed over again once already: a connection found gone before a byte was sent. */
  again: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface Conn {
  smtp: SMTPConnection;
  messages: number;
  busy: boolean;
  closed: boolean;
}

type SendError = Error & { code?: string; responseCode?: number; command?: string };

/** Bulk mail's SMTP connections (see the file's comment). */
export class SmtpPool {
  /** Messages waiting for a connection, oldest first. */
  private readonly queue: Job[] = [];
  private readonly conns = new Set<Conn>();
  private opening = 0;
  private closed = false;
  private readonly connectionOptions: SMTPConnectionOptions;

  constructor(
    private readonly opts: PoolOptions,
    private readonly permitGraceMs: number,
  ) {
    this.connectionOptions = {
      host: opts.host,
      port: opts.port,
      secure: opts.secure,
      connectionTimeout: opts.connectionTimeout,
      greetingTimeout: opts.greetingTimeout,
      socketTimeout: opts.socketTimeout,
      logger: false,
    };
  }

  /** Sends `raw`; resolves once the server accepted it, rejects with the SMTP or permit error. */
  send(raw: Buffer, envelope: { from: string; to: string[] }, permits?: SendPermits, due?: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('SMTP pool is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({
        raw,
        envelope: { from: envelope.from, to: envelope.to, size: raw.length },
        permits,
        due,
        again: false,
        resolve,
        reject,
      });
      this.pump();
    });
  }

  /** Fails the waiting messages and quits every connection. */
  close(): void {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('SMTP pool is closed'));
    for (const conn of [...this.conns]) {
      this.conns.delete(conn);
      conn.closed = true;
      conn.smtp.quit();
    }
  }

  /** A connected, greeted (and logged in) connection. */
  private async open(): Promise<Conn> {
    const opts = this.opts;
    const existing = opts.secure ? undefined : await connectSocket(opts.port, opts.host, opts.connectionTimeout);
    const smtp = new SMTPConnection(
      existing ? { ...this.connectionOptions, connection: existing } : this.connectionOptions,
    );
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
        this.drop(conn);
      });
      smtp.once('end', () => {
        done(new Error('Connection closed unexpectedly'));
        this.drop(conn);
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
  private drop(conn: Conn): void {
    if (this.conns.delete(conn)) this.pump();
    if (conn.closed) return;
    conn.closed = true;
    conn.smtp.close();
  }

  /** Hands waiting messages to idle connections, and opens connections while messages wait. */
  private pump(): void {
    if (this.closed) return;
    const queue = this.queue;
    for (const conn of this.conns) {
      if (queue.length === 0) return;
      if (!conn.busy && !conn.closed) this.start(conn, queue.shift()!);
    }
    while (queue.length > this.opening && this.conns.size + this.opening < this.opts.maxConnections) {
      this.opening += 1;
      this.open().then(
        (conn) => {
          this.opening -= 1;
          if (this.closed) return this.drop(conn);
          this.conns.add(conn);
          this.pump();
        },
        (err: unknown) => {
          this.opening -= 1;
          // Nothing else will take the waiting messages: they fail (a retry sends them).
          if (this.conns.size === 0 && this.opening === 0) for (const job of queue.splice(0)) job.reject(err);
        },
      );
    }
  }

  /** The message has its connection: it goes out at its permit's time. */
  private start(conn: Conn, job: Job): void {
    conn.busy = true;
    if (!job.permits) return this.transmit(conn, job);
    if (job.due !== undefined && Date.now() - job.due <= this.permitGraceMs) {
      // The permit came with the message and is still good: at its time, or now if that has passed.
      const wait = job.due - Date.now();
      if (wait >= 1) setTimeout(() => this.transmit(conn, job), wait);
      else this.transmit(conn, job);
      return;
    }
    job.permits.take().then(
      () => this.transmit(conn, job),
      (err: unknown) => {
        conn.busy = false;
        job.reject(err);
        this.pump();
      },
    );
  }

  private transmit(conn: Conn, job: Job): void {
    if (conn.closed) return this.sent(conn, job, new Error('Connection closed'), true);
    conn.smtp.send(job.envelope, job.raw, (err) => this.sent(conn, job, err, false));
  }

  private sent(conn: Conn, job: Job, err: SendError | null, gone: boolean): void {
    conn.busy = false;
    if (!err) {
      conn.messages += 1;
      job.resolve();
      if (conn.messages >= this.opts.maxMessages) this.drop(conn);
      return this.pump();
    }
    // The connection was gone before a byte of the message was written (the server ended it
    // while idle): the message goes out on another, once.
    if ((gone || err.command === 'API') && !job.again) {
      job.again = true;
      this.drop(conn);
      this.queue.unshift(job);
      return this.pump();
    }
    job.reject(err);
    if ((err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && err.responseCode !== 421 && !conn.closed) {
      // The server refused this message; the session is reset and the connection kept.
      conn.busy = true;
      conn.smtp.reset((e) => {
        conn.busy = false;
        if (e) this.drop(conn);
        this.pump();
      });
      return;
    }
    this.drop(conn);
  }
}

function threadError(err: unknown): ThreadError {
  const e = (err ?? {}) as { message?: unknown; code?: unknown; responseCode?: unknown; response?: unknown };
  return {
    message: typeof e.message === 'string' ? e.message : String(err),
    code: typeof e.code === 'string' ? e.code : undefined,
    responseCode: typeof e.responseCode === 'number' ? e.responseCode : undefined,
    response: typeof e.response === 'string' ? e.response : undefined,
  };
}

/** A sending thread: one pool, fed by the main thread, which answers its permit requests. */
function runThread(port: MessagePort, init: ThreadInit): void {
  const pool = new SmtpPool(init.options, init.permitGraceMs);
  const post = (m: ToMain) => port.postMessage(m);
  /** Permits asked of the main thread, by message id. */
  const asked = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  const takePermit = (id: number) =>
    new Promise<void>((resolve, reject) => {
      asked.set(id, { resolve, reject });
      post({ t: 'take-permit', id });
    });
  port.on('message', (m: ToThread) => {
    switch (m.t) {
      case 'send': {
        const id = m.id;
        pool
          .send(
            Buffer.from(m.bytes, m.offset, m.length),
            m.envelope,
            m.permitted ? { take: () => takePermit(id) } : undefined,
            m.due,
          )
          .then(
            () => post({ t: 'sent', id }),
            (err: unknown) => post({ t: 'failed', id, error: threadError(err) }),
          );
        return;
      }
      case 'permit':
      case 'no-permit': {
        const waiting = asked.get(m.id);
        if (!waiting) return;
        asked.delete(m.id);
        if (m.t === 'permit') waiting.resolve();
        else waiting.reject(new Error(m.message));
        return;
      }
      case 'close':
        pool.close();
        port.close();
    }
  });
}

const init = workerData as Partial<ThreadInit> | null;
if (!isMainThread && parentPort && init?.role === 'smtp-thread') runThread(parentPort, init as ThreadInit);
