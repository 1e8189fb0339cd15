import { Inject, Injectable, type OnApplicationShutdown, Optional } from '@nestjs/common';
import type { Socket } from 'node:net';
import nodemailer, { type SendMailOptions, type TransportOptions, type Transporter } from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import type { BuiltMessage, Sender } from './bulk-message.js';
import { DkimKeys } from './dkim/dkim-keys.service.js';
import { nodemailerDkim, signRawMessage } from './dkim/dkim-signer.js';
import type { SendPermits } from './send-permits.js';
import { SLOT_MS } from './send-rate-limiter.service.js';
import { connectSocket, SmtpPool } from './smtp-thread.js';
import type { PoolOptions } from './smtp-thread-protocol.js';
import { SmtpThreads } from './smtp-threads.js';

/**
 * Outgoing SMTP. Lifecycle mail (confirmation, guide) goes through a nodemailer transporter; bulk
 * mail (digests, test copies) as raw bytes through one `SmtpPool`, run in the sending threads
 * (`SMTP_THREADS` > 0) or in this thread (`SMTP_THREADS=0`). Every plain connection is a
 * TCP_NODELAY socket from `connectSocket`.
 */
@Injectable()
export class MailTransport implements OnApplicationShutdown {
  private readonly transporter: Transporter;
  /** Bulk mail's pool, started with the first bulk message. */
  private bulk: SmtpThreads | SmtpPool | null = null;
  private readonly threadCount: number;
  private readonly poolOptions: PoolOptions;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    /** Signs each message whose From domain has an active key (absent: nothing is signed). */
    @Optional() private readonly dkim?: DkimKeys,
  ) {
    const url = new URL(config.smtp.url);
    const secure = url.protocol === 'smtps:';
    const host = url.hostname;
    const port = url.port ? Number(url.port) : secure ? 465 : 587;
    this.threadCount = config.smtp.threads;
    this.poolOptions = {
      pool: true,
      maxConnections: config.smtp.maxConnections,
      maxMessages: 1000,
      host,
      port,
      secure,
      auth: url.username
        ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) }
        : undefined,
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 60_000,
    };
    const timeout = this.poolOptions.connectionTimeout;
    this.transporter = nodemailer.createTransport({
      ...this.poolOptions,
      pool: config.smtp.pool,
      getSocket: secure
        ? undefined
        : (_opts: unknown, cb: (err: Error | null, socketOptions?: { connection: Socket }) => void) =>
            connectSocket(port, host, timeout).then(
              (connection) => cb(null, { connection }),
              (err: Error) => cb(err),
            ),
    } as TransportOptions);
  }

  private bulkPool(): SmtpThreads | SmtpPool {
    this.bulk ??=
      this.threadCount > 0
        ? new SmtpThreads(this.poolOptions, this.threadCount)
        : new SmtpPool(this.poolOptions, SLOT_MS);
    return this.bulk;
  }

  /** Lifecycle mail, with nodemailer's mailer-level options (`list`). */
  async send(message: SendMailOptions): Promise<{ messageId: string }> {
    const key = message.from ? this.dkim?.keyFor(message.from as Sender) : null;
    const info = (await this.transporter.sendMail(key ? { ...message, dkim: nodemailerDkim(key) } : message)) as {
      messageId: string;
    };
    return { messageId: info.messageId };
  }

  /**
   * Bulk mail not built by a `BulkMessageTemplate`: built into one buffer here, then sent as
   * `sendRaw` sends. Mailer-level options (`list`) are not applied: pass headers instead.
   */
  async sendBuilt(message: Omit<SendMailOptions, 'list'>, permits?: SendPermits): Promise<{ messageId: string }> {
    const node = new MailComposer(message).compile();
    const built = await node.build();
    const key = message.from ? this.dkim?.keyFor(message.from as Sender) : null;
    const raw = key ? signRawMessage(key, built) : built;
    const envelope = node.getEnvelope();
    await this.bulkPool().send(raw, { from: envelope.from || '', to: envelope.to }, permits);
    return { messageId: node.messageId() };
  }

  /**
   * A message already built (see `BulkMessageTemplate`), handed to the bulk pool as it is: the SMTP
   * socket gets a few large writes instead of one per MIME stream chunk. With `permits`, it leaves
   * at a send permit's time once its connection is ready.
   */
  async sendRaw(message: BuiltMessage, permits?: SendPermits): Promise<{ messageId: string }> {
    await this.bulkPool().send(message.raw, message.envelope, permits);
    return { messageId: message.messageId };
  }

  /** Last: after the queue workers have finished their jobs. */
  async onApplicationShutdown(): Promise<void> {
    this.transporter.close();
    await this.bulk?.close();
  }
}
