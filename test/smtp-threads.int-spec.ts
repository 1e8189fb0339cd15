import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { AddressInfo } from 'node:net';
import type { Worker } from 'node:worker_threads';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { MessageBuffer } from '#mail/bulk-message.js';
import { classifySmtpError, isHardBounce } from '#mail/smtp-errors.js';
import type { ThreadInit } from '#mail/smtp-thread-protocol.js';
import { SmtpThreads } from '#mail/smtp-threads.js';
import { TestSmtp } from './support/smtp.js';

/** Bulk mail from sending threads (`SMTP_THREADS`), against a real SMTP server. */
describe('SMTP sending threads', () => {
  let smtp: TestSmtp;
  const open: SmtpThreads[] = [];

  const options = (maxConnections: number, port = smtp.port): ThreadInit['options'] => ({
    pool: true,
    maxConnections,
    maxMessages: 1000,
    host: '127.0.0.1',
    port,
    secure: false,
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 60_000,
  });
  const threads = (count: number, connections = 4) => {
    const t = new SmtpThreads(options(connections), count);
    open.push(t);
    return t;
  };
  const message = async (to: string, text = `Hello ${to}`) => {
    const node = new MailComposer({ from: 'news@example.com', to, subject: 'Threads', text }).compile();
    return { raw: await node.build(), messageId: node.messageId(), envelope: { from: 'news@example.com', to: [to] } };
  };

  beforeAll(async () => {
    smtp = await new TestSmtp().start();
  });

  afterAll(async () => {
    await Promise.all(open.map((t) => t.close()));
    await smtp?.stop();
  });

  it('shares the connections out between at most one thread per connection', () => {
    expect(threads(2, 5).threads).toBe(2);
    expect(threads(8, 3).threads).toBe(3);
    expect(threads(1, 5).threads).toBe(1);
  });

  it('sends bytes from a shared sender buffer in place, and copies of other buffers, unchanged', async () => {
    const t = threads(2);
    const buffers = Array.from({ length: 6 }, () => new MessageBuffer());
    const sent = await Promise.all(
      buffers.map(async (b, i) => {
        const m = await message(`shared${i}@example.com`, `Shared ${i} ${'x'.repeat(i * 1000)}`);
        const raw = b.take(m.raw.length);
        m.raw.copy(raw);
        expect(raw.buffer).toBeInstanceOf(SharedArrayBuffer);
        await t.send(raw, m.envelope);
        return m;
      }),
    );
    const copied = await message('copied@example.com');
    await t.send(copied.raw, copied.envelope);
    for (const m of [...sent, copied]) {
      const [got] = smtp.to(m.envelope.to[0]);
      expect(got.raw).toBe(m.raw.toString('utf8'));
      expect(got.envelope.from).toBe('news@example.com');
    }
  });

  it('reports SMTP refusals with their reply code, so bounces are told from retries', async () => {
    smtp.rcptHook = (address) =>
      address === 'gone@example.com' ? { code: 550, message: '5.1.1 No such user here' } : null;
    try {
      const m = await message('gone@example.com');
      const err = await threads(1)
        .send(m.raw, m.envelope)
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toMatchObject({ responseCode: 550 });
      expect(classifySmtpError(err)).toBe('permanent');
      expect(isHardBounce(err)).toBe(true);
      expect(smtp.to('gone@example.com')).toHaveLength(0);
    } finally {
      smtp.rcptHook = () => null;
    }
  });

  it('fails the messages of a thread that stops (a retry sends them) and carries on with a new thread', async () => {
    const t = threads(1);
    let asked!: () => void;
    const gateAsked = new Promise<void>((resolve) => (asked = resolve));
    const m = await message('lost@example.com');
    // Held at its gate, the message is out in the thread when the thread goes.
    const sending = t.send(m.raw, m.envelope, {
      take: () => {
        asked();
        return new Promise(() => undefined);
      },
    });
    await gateAsked;
    // The test reaches into the pool for its thread: nothing else can stop one from outside.
    const slots = (t as unknown as { slots: { worker: Worker }[] }).slots;
    await slots[0].worker.terminate();
    const err = await sending.then(
      () => null,
      (e: unknown) => e,
    );
    expect(String(err)).toMatch(/SMTP thread stopped while sending/);
    expect(classifySmtpError(err)).toBe('transient');
    const after = await message('after-restart@example.com');
    await t.send(after.raw, after.envelope);
    expect(smtp.to('after-restart@example.com')).toHaveLength(1);
    expect(smtp.to('lost@example.com')).toHaveLength(0);
  });

  it('closes: the threads exit, and a later send fails with a clear message', async () => {
    const t = new SmtpThreads(options(2), 2);
    const m = await message('before-close@example.com');
    await t.send(m.raw, m.envelope);
    await t.close();
    await expect(t.send(m.raw, m.envelope)).rejects.toThrow(/SMTP threads are closed/);
  });

  /**
   * A server of its own for one test: which session (connection) carried each accepted message.
   * The threads are closed first (QUIT, see `withThreads`), or the server's close waits for their connections.
   */
  const sessionServer = async (extra: Partial<SMTPServerOptions> = {}) => {
    const accepted: { to: string; session: string; at: number }[] = [];
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      onData: (stream, session, cb) => {
        stream.resume();
        stream.on('end', () => {
          accepted.push({
            to: session.envelope.rcptTo.map((r) => r.address).join(','),
            session: session.id,
            at: Date.now(),
          });
          cb();
        });
      },
      ...extra,
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.server.address() as AddressInfo).port;
    const stop = () => new Promise<void>((resolve) => server.close(() => resolve()));
    return { accepted, port, stop, sessions: () => new Set(accepted.map((a) => a.session)).size };
  };

  /** One thread with one connection (and `threadOptions`) against a `sessionServer(serverOptions)`; both closed after `body`. */
  const withThreads = async (
    serverOptions: Partial<SMTPServerOptions>,
    threadOptions: Partial<ThreadInit['options']>,
    body: (t: SmtpThreads, server: Awaited<ReturnType<typeof sessionServer>>) => Promise<void>,
  ) => {
    const server = await sessionServer(serverOptions);
    const t = new SmtpThreads({ ...options(1, server.port), ...threadOptions }, 1);
    try {
      await body(t, server);
    } finally {
      await t.close();
      await server.stop();
    }
  };

  it('keeps a connection for up to maxMessages messages, then opens a new one', async () => {
    await withThreads({}, { maxMessages: 2 }, async (t, server) => {
      for (let i = 0; i < 5; i += 1) {
        const m = await message(`reuse${i}@example.com`);
        await t.send(m.raw, m.envelope);
      }
      expect(server.accepted.map((a) => a.to)).toEqual([0, 1, 2, 3, 4].map((i) => `reuse${i}@example.com`));
      expect(server.sessions()).toBe(3);
    });
  });

  it('replaces a connection the server closed while it was idle, and the next message goes out', async () => {
    // The server hangs up on a client idle for 300 ms (421, as a real server does after its timeout).
    await withThreads({ socketTimeout: 300 }, {}, async (t, server) => {
      const first = await message('before-idle@example.com');
      await t.send(first.raw, first.envelope);
      await new Promise((r) => setTimeout(r, 800));
      const second = await message('after-idle@example.com');
      await t.send(second.raw, second.envelope);
      expect(server.accepted.map((a) => a.to)).toEqual(['before-idle@example.com', 'after-idle@example.com']);
      expect(server.sessions()).toBe(2);
    });
  });

  it('keeps the connection after a refused recipient: the next message goes out on it', async () => {
    await withThreads(
      {
        onRcptTo: (address, _session, cb) =>
          address.address === 'refused@example.com'
            ? cb(Object.assign(new Error('5.1.1 No such user'), { responseCode: 550 }))
            : cb(),
      },
      {},
      async (t, server) => {
        const ok1 = await message('ok1@example.com');
        await t.send(ok1.raw, ok1.envelope);
        const refused = await message('refused@example.com');
        await expect(t.send(refused.raw, refused.envelope)).rejects.toMatchObject({ responseCode: 550 });
        const ok2 = await message('ok2@example.com');
        await t.send(ok2.raw, ok2.envelope);
        expect(server.accepted.map((a) => a.to)).toEqual(['ok1@example.com', 'ok2@example.com']);
        expect(server.sessions()).toBe(1);
      },
    );
  });

  it('a permit reserved ahead: the thread holds the message until it is due, and does not ask the gate', async () => {
    await withThreads({}, {}, async (t, server) => {
      const m = await message('ahead@example.com');
      let gateAsked = 0;
      let due = 0;
      await t.send(m.raw, m.envelope, {
        take: async () => {
          gateAsked += 1;
        },
        reserve: async () => (due = Date.now() + 300),
      });
      expect(gateAsked).toBe(0);
      expect(server.accepted.map((a) => a.to)).toEqual(['ahead@example.com']);
      expect(server.accepted[0].at).toBeGreaterThanOrEqual(due - 1);
    });
  });

  it('a permit reserved ahead that is past its time when the connection is ready: the thread asks the gate', async () => {
    // The greeting waits 200 ms: the permit, good for 50 ms after its time, has gone stale by then.
    await withThreads({ onConnect: (_session, cb) => void setTimeout(() => cb(), 200) }, {}, async (t, server) => {
      const m = await message('stale@example.com');
      let gateAt = 0;
      const reservedAt = Date.now();
      await t.send(m.raw, m.envelope, {
        take: async () => {
          gateAt = Date.now();
        },
        reserve: async () => Date.now(),
      });
      expect(gateAt - reservedAt).toBeGreaterThanOrEqual(195);
      expect(server.accepted.map((a) => a.to)).toEqual(['stale@example.com']);
      expect(server.accepted[0].at).toBeGreaterThanOrEqual(gateAt);
    });
  });

  it('logs in where the server asks for credentials', async () => {
    await withThreads(
      {
        authOptional: false,
        authMethods: ['PLAIN', 'LOGIN'],
        onAuth: (auth, _session, cb) =>
          auth.username === 'mailroom' && auth.password === 's3cret'
            ? cb(null, { user: auth.username })
            : cb(new Error('Invalid username or password')),
      },
      { auth: { user: 'mailroom', pass: 's3cret' } },
      async (t, server) => {
        const m = await message('authed@example.com');
        await t.send(m.raw, m.envelope);
        expect(server.accepted.map((a) => a.to)).toEqual(['authed@example.com']);
      },
    );
  });

  it('fails messages with a transient error when the server cannot be reached', async () => {
    const server = await sessionServer();
    const port = server.port;
    await server.stop();
    const t = new SmtpThreads(options(2, port), 1);
    const m = await message('unreachable@example.com');
    const err = await t.send(m.raw, m.envelope).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(classifySmtpError(err)).toBe('transient');
    await t.close();
  });
});
