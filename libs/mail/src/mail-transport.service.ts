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

/** One SMTP server's senders: lifecycle mail's transporter and bulk mail's pool (started on first use). */
interface SmtpSenders {
  transporter: Transporter;
  poolOptions: PoolOptions;
  bulk: SmtpThreads | SmtpPool | null;
}

/** A newsletter's `smtpRoute` that SMTP_ROUTES no longer names: its mail waits (a retry) rather than leaving elsewhere. */
export class UnknownSmtpRouteError extends Error {
  constructor(readonly route: string) {
    super(
      `SMTP route "${route}" is not configured (SMTP_ROUTES): add it, or clear the newsletter's smtpRoute to send through SMTP_URL`,
    );
    this.name = 'UnknownSmtpRouteError';
  }
}

/** How logs, metrics and pause reasons name a route: its name, or `default` for SMTP_URL. */
export function routeLabel(route: string | null | undefined): string {
  return route ?? 'default';
}

/**
 * Outgoing SMTP. Lifecycle mail (confirmation, guide) goes through a nodemailer transporter; bulk
 * mail (digests, test copies) as raw bytes through an `SmtpPool`, run in the sending threads
 * (`SMTP_THREADS` > 0) or in this thread (`SMTP_THREADS=0`). Every plain connection is a
 * TCP_NODELAY socket from `connectSocket`. Each SMTP route (SMTP_ROUTES, a newsletter's
 * `smtpRoute`) has a transporter and a pool of its own; no route (null) is SMTP_URL.
 */
@Injectable()
export class MailTransport implements OnApplicationShutdown {
  private readonly threadCount: number;
  private readonly pooled: boolean;
  /** SMTP_URL's senders, and each route's, made on first use (a route no newsletter uses opens nothing). */
  private readonly main: SmtpSenders;
  private readonly routes = new Map<string, SmtpSenders>();
  private readonly config: AppConfig;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    /** Signs each message whose From domain has an active key (absent: nothing is signed). */
    @Optional() private readonly dkim?: DkimKeys,
  ) {
    this.config = config;
    this.threadCount = config.smtp.threads;
    this.pooled = config.smtp.pool;
    this.main = this.senders(config.smtp.url, config.smtp.maxConnections);
  }

  private senders(smtpUrl: string, maxConnections: number): SmtpSenders {
    const url = new URL(smtpUrl);
    const secure = url.protocol === 'smtps:';
    const host = url.hostname;
    const port = url.port ? Number(url.port) : secure ? 465 : 587;
    const poolOptions: PoolOptions = {
      pool: true,
      maxConnections,
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
    const timeout = poolOptions.connectionTimeout;
    const transporter = nodemailer.createTransport({
      ...poolOptions,
      pool: this.pooled,
      getSocket: secure
        ? undefined
        : (_opts: unknown, cb: (err: Error | null, socketOptions?: { connection: Socket }) => void) =>
            connectSocket(port, host, timeout).then(
              (connection) => cb(null, { connection }),
              (err: Error) => cb(err),
            ),
    } as TransportOptions);
    return { transporter, poolOptions, bulk: null };
  }

  /** The senders of `route` (null or undefined: SMTP_URL). */
  private route(route: string | null | undefined): SmtpSenders {
    if (route === null || route === undefined) return this.main;
    let senders = this.routes.get(route);
    if (!senders) {
      const config = this.config.smtp.routes.get(route);
      if (!config) throw new UnknownSmtpRouteError(route);
      senders = this.senders(config.url, config.maxConnections);
      this.routes.set(route, senders);
    }
    return senders;
  }

  private bulkPool(route: string | null | undefined): SmtpThreads | SmtpPool {
    const senders = this.route(route);
    senders.bulk ??=
      this.threadCount > 0
        ? new SmtpThreads(senders.poolOptions, this.threadCount)
        : new SmtpPool(senders.poolOptions, SLOT_MS);
    return senders.bulk;
  }

  /** Lifecycle mail, with nodemailer's mailer-level options (`list`), through `route` (null: SMTP_URL). */
  async send(message: SendMailOptions, route?: string | null): Promise<{ messageId: string }> {
    await this.dkim?.fresh();
    const key = message.from ? this.dkim?.keyFor(message.from as Sender) : null;
    const signed = key ? { ...message, dkim: nodemailerDkim(key) } : message;
    const info = (await this.route(route).transporter.sendMail(signed)) as { messageId: string };
    return { messageId: info.messageId };
  }

  /**
   * Bulk mail not built by a `BulkMessageTemplate`: built into one buffer here, then sent as
   * `sendRaw` sends. Mailer-level options (`list`) are not applied: pass headers instead.
   */
  async sendBuilt(
    message: Omit<SendMailOptions, 'list'>,
    permits?: SendPermits,
    route?: string | null,
  ): Promise<{ messageId: string }> {
    const node = new MailComposer(message).compile();
    const built = await node.build();
    await this.dkim?.fresh();
    const key = message.from ? this.dkim?.keyFor(message.from as Sender) : null;
    const raw = key ? signRawMessage(key, built) : built;
    const envelope = node.getEnvelope();
    await this.bulkPool(route).send(raw, { from: envelope.from || '', to: envelope.to }, permits);
    return { messageId: node.messageId() };
  }

  /**
   * A message already built (see `BulkMessageTemplate`), handed to the bulk pool as it is: the SMTP
   * socket gets a few large writes instead of one per MIME stream chunk. With `permits`, it leaves
   * at a send permit's time once its connection is ready. Through `route` (null: SMTP_URL).
   */
  async sendRaw(message: BuiltMessage, permits?: SendPermits, route?: string | null): Promise<{ messageId: string }> {
    await this.bulkPool(route).send(message.raw, message.envelope, permits);
    return { messageId: message.messageId };
  }

  /** Last: after the queue workers have finished their jobs. */
  async onApplicationShutdown(): Promise<void> {
    const all = [this.main, ...this.routes.values()];
    for (const senders of all) senders.transporter.close();
    await Promise.all(all.map((senders) => senders.bulk?.close()));
  }
}
