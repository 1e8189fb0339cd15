import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { Worker } from 'node:worker_threads';
import { MessageBuffer } from '../libs/mail/src/bulk-message.js';
import { classifySmtpError, isHardBounce } from '../libs/mail/src/mail-transport.service.js';
import type { ThreadInit } from '../libs/mail/src/smtp-thread-protocol.js';
import { SmtpThreads } from '../libs/mail/src/smtp-threads.js';
import { TestSmtp } from './support/smtp.js';

/** Bulk mail from sending threads (`SMTP_THREADS`), against a real SMTP server. */
describe('SMTP sending threads', () => {
  let smtp: TestSmtp;
  const open: SmtpThreads[] = [];

  const options = (maxConnections: number): ThreadInit['options'] => ({
    pool: true,
    maxConnections,
    maxMessages: 1000,
    host: '127.0.0.1',
    port: smtp.port,
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
        await t.send(raw, m.envelope, m.messageId);
        return m;
      }),
    );
    const copied = await message('copied@example.com');
    await t.send(copied.raw, copied.envelope, copied.messageId);
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
        .send(m.raw, m.envelope, m.messageId)
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
    const sending = t.send(m.raw, m.envelope, m.messageId, () => {
      asked();
      return new Promise(() => undefined);
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
    await t.send(after.raw, after.envelope, after.messageId);
    expect(smtp.to('after-restart@example.com')).toHaveLength(1);
    expect(smtp.to('lost@example.com')).toHaveLength(0);
  });

  it('closes: the threads exit, and a later send fails with a clear message', async () => {
    const t = new SmtpThreads(options(2), 2);
    const m = await message('before-close@example.com');
    await t.send(m.raw, m.envelope, m.messageId);
    await t.close();
    await expect(t.send(m.raw, m.envelope, m.messageId)).rejects.toThrow(/SMTP threads are closed/);
  });
});
