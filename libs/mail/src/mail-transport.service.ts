import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import nodemailer, { type SendMailOptions, type TransportOptions, type Transporter } from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import type { ThreadInit } from './smtp-thread-protocol.js';
import { SmtpThreads } from './smtp-threads.js';

export type SmtpFailure = 'permanent' | 'transient';

interface SmtpError {
  responseCode?: number;
  response?: string;
  code?: string;
  message?: string;
}

/**
 * Waited on once the message has an SMTP connection of its own (connected, greeted): right
 * before its bytes are read (nodemailer's pool) or before its envelope (a sending thread). A send
 * permit taken here is used within a few round trips, not after a connection was opened or while
 * the message waited in the pool's queue.
 */
export type SendGate = () => Promise<void>;

/**
 * A send permit taken before the message has a connection: resolves with the time it is due (ms
 * since the epoch). A sending thread holds the message until then and sends it once its
 * connection is ready, if that is within `SLOT_MS` of the due time (as a permit taken there would
 * have been); later than that, it takes a new permit through the gate. It saves the thread's
 * round trip to the main thread for the permit. Without threads, the gate alone is used.
 */
export type PermitAhead = () => Promise<number>;

/**
 * The message's bytes as a stream that opens the gate on its first read. The pool reads a message
 * only once a connection has taken it; if the gate fails, the stream fails before a byte is
 * written, so the server never gets the message's end (nothing is delivered) and the send fails
 * with the gate's error.
 */
export function gated(raw: Buffer, gate?: SendGate): Buffer | Readable {
  if (!gate) return raw;
  let opened = false;
  return new Readable({
    read() {
      if (opened) return;
      opened = true;
      gate().then(
        () => {
          this.push(raw);
          this.push(null);
        },
        (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
      );
    },
  });
}

/** 5xx is permanent, 4xx and connection problems are worth a retry. */
export function classifySmtpError(err: unknown): SmtpFailure {
  const code = (err as SmtpError | null)?.responseCode;
  return typeof code === 'number' && code >= 500 && code < 600 ? 'permanent' : 'transient';
}

/** A hard bounce: the mailbox does not exist (enhanced status 5.1.x). */
export function isHardBounce(err: unknown): boolean {
  const e = err as SmtpError | null;
  if (classifySmtpError(err) !== 'permanent') return false;
  // The enhanced code right after the reply code ("550 5.1.1", "550-5.1.1"), not any 5.1.x in the text (an IP address).
  return /\b5\d\d[ -]5\.1\.\d{1,3}\b/.test(`${e?.response ?? ''} ${e?.message ?? ''}`);
}

/** A policy rejection (5.7.x): our reputation or authentication, not the mailbox. */
export function isPolicyRejection(err: unknown): boolean {
  const e = err as SmtpError | null;
  if (classifySmtpError(err) !== 'permanent') return false;
  return /\b5\d\d[ -]5\.7\.\d{1,3}\b/.test(`${e?.response ?? ''} ${e?.message ?? ''}`);
}

@Injectable()
export class MailTransport implements OnApplicationShutdown {
  private readonly transporter: Transporter;
  /** Bulk mail's sending threads (`SMTP_THREADS`), started with the first bulk message. */
  private threads: SmtpThreads | null = null;
  private readonly threadCount: number;
  private readonly threadOptions: ThreadInit['options'];

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    const url = new URL(config.smtp.url);
    const secure = url.protocol === 'smtps:';
    const host = url.hostname;
    const port = url.port ? Number(url.port) : secure ? 465 : 587;
    this.threadCount = config.smtp.threads;
    this.threadOptions = {
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
    this.transporter = nodemailer.createTransport({
      ...this.threadOptions,
      pool: config.smtp.pool,
      // Nagle + delayed ACK stalls each message ~40 ms on a pooled connection: hand nodemailer
      // sockets with TCP_NODELAY (plain SMTP; STARTTLS upgrades keep the option).
      getSocket: secure
        ? undefined
        : (
            _opts: unknown,
            cb: (err: Error | null, socketOptions?: { connection: import('node:net').Socket }) => void,
          ) => {
            const socket = connect(port, host);
            socket.setNoDelay(true);
            const onError = (e: Error) => cb(e);
            socket.once('error', onError);
            socket.once('connect', () => {
              socket.removeListener('error', onError);
              cb(null, { connection: socket });
            });
          },
    } as TransportOptions);
  }

  /** The sending threads, when bulk mail goes out from threads (`SMTP_THREADS` > 0). */
  private bulkThreads(): SmtpThreads | null {
    if (this.threadCount === 0) return null;
    this.threads ??= new SmtpThreads(this.threadOptions, this.threadCount);
    return this.threads;
  }

  async send(message: SendMailOptions): Promise<{ messageId: string }> {
    const info = (await this.transporter.sendMail(message)) as { messageId: string };
    return { messageId: info.messageId };
  }

  /**
   * Bulk mail: the message is built into one buffer first and handed to the pool as raw bytes, so
   * the SMTP socket gets a few large writes instead of one per MIME stream chunk (with TCP_NODELAY
   * each write is a packet). Mailer-level options (`list`) are not applied: pass headers instead.
   */
  async sendBuilt(
    message: Omit<SendMailOptions, 'list'>,
    gate?: SendGate,
    ahead?: PermitAhead,
  ): Promise<{ messageId: string }> {
    const node = new MailComposer(message).compile();
    const raw = await node.build();
    const messageId = node.messageId();
    const envelope = node.getEnvelope();
    const threads = this.bulkThreads();
    if (threads && envelope.from) {
      await threads.send(raw, { from: envelope.from, to: envelope.to }, gate, ahead);
      return { messageId };
    }
    await this.transporter.sendMail({ envelope, raw: gated(raw, gate), messageId });
    return { messageId };
  }

  /** A message already built (see `BulkMessageTemplate`): handed to the pool as it is. */
  async sendRaw(
    message: { raw: Buffer; messageId: string; envelope: { from: string; to: string[] } },
    gate?: SendGate,
    ahead?: PermitAhead,
  ): Promise<{
    messageId: string;
  }> {
    const threads = this.bulkThreads();
    if (threads) {
      await threads.send(message.raw, message.envelope, gate, ahead);
      return { messageId: message.messageId };
    }
    await this.transporter.sendMail({
      envelope: message.envelope,
      raw: gated(message.raw, gate),
      messageId: message.messageId,
    });
    return { messageId: message.messageId };
  }

  /** Last: after the queue workers have finished their jobs. */
  async onApplicationShutdown(): Promise<void> {
    this.transporter.close();
    await this.threads?.close();
  }
}
