import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '#config/config.js';
import { MailTransport } from '#mail/mail-transport.service.js';

/**
 * The send gate (where the digest sender takes its send permit) opens once the message has a
 * connected, greeted SMTP connection, not while the connection is still being opened: against a
 * real SMTP server whose greeting is slow. The same from the main thread and from sending threads
 * (`SMTP_THREADS`), where the thread asks the main thread to open the gate.
 */
describe.each(['0', '2'])('send gate (SMTP_THREADS=%s)', (threads) => {
  const GREETING_DELAY_MS = 300;
  let server: SMTPServer;
  let port = 0;
  const greetedAt: number[] = [];
  const accepted: string[] = [];
  let transport: MailTransport;

  beforeAll(async () => {
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      onConnect: (_session, cb) => {
        // The greeting (and so the whole session) waits: a slow server, or a cold connection.
        setTimeout(() => {
          greetedAt.push(Date.now());
          cb();
        }, GREETING_DELAY_MS);
      },
      onData: (stream, session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          accepted.push(session.envelope.rcptTo.map((r) => r.address).join(','));
          cb();
        });
      },
    });
    server.on('error', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.server.address() as AddressInfo).port;
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: 'postgres://127.0.0.1/unused',
      SMTP_URL: `smtp://127.0.0.1:${port}`,
      APP_SECRET: 'x'.repeat(32),
      SMTP_THREADS: threads,
    });
    transport = new MailTransport(config);
  });

  afterAll(async () => {
    await transport.onApplicationShutdown();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const message = async (to: string) => {
    const node = new MailComposer({ from: 'news@example.com', to, subject: 'Gate', text: 'Hello' }).compile();
    return { raw: await node.build(), messageId: node.messageId(), envelope: { from: 'news@example.com', to: [to] } };
  };

  it('opens after the connection is greeted, and the message is delivered right after it', async () => {
    const start = Date.now();
    let openedAt = 0;
    const sent = await transport.sendRaw(await message('first@example.com'), {
      take: async () => {
        openedAt = Date.now();
      },
    });
    const done = Date.now();
    expect(sent.messageId).toMatch(/@/);
    expect(greetedAt.length).toBeGreaterThanOrEqual(1);
    // Not at the call (a permit taken then would be spent waiting for the connection) ...
    expect(openedAt - start).toBeGreaterThanOrEqual(GREETING_DELAY_MS - 5);
    expect(openedAt).toBeGreaterThanOrEqual(greetedAt[0]);
    // ... and the message waited for nothing else: accepted once the gate opened.
    expect(accepted).toContain('first@example.com');
    expect(done).toBeGreaterThanOrEqual(openedAt);
  });

  it('a gate that waits holds the message back until it opens', async () => {
    let release!: () => void;
    const opened = new Promise<void>((resolve) => (release = resolve));
    let asked = false;
    const sending = transport.sendRaw(await message('held@example.com'), {
      take: async () => {
        asked = true;
        await opened;
      },
    });
    const deadline = Date.now() + 5000;
    while (!asked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(asked).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(accepted).not.toContain('held@example.com');
    release();
    await sending;
    expect(accepted).toContain('held@example.com');
  });

  it('a gate that fails fails the send, and nothing is delivered', async () => {
    await expect(
      transport.sendRaw(await message('refused@example.com'), {
        take: () => Promise.reject(new Error('no permit: database away')),
      }),
    ).rejects.toThrow(/no permit: database away/);
    // The next message still goes out (the pool replaced or kept its connection).
    await transport.sendRaw(await message('after@example.com'), { take: async () => undefined });
    expect(accepted).toContain('after@example.com');
    expect(accepted).not.toContain('refused@example.com');
  });

  it('sendBuilt takes the gate too', async () => {
    let opened = false;
    await transport.sendBuilt(
      { from: 'news@example.com', to: 'built@example.com', subject: 'B', text: 'b' },
      {
        take: async () => {
          opened = true;
        },
      },
    );
    expect(opened).toBe(true);
    expect(accepted).toContain('built@example.com');
  });
});
