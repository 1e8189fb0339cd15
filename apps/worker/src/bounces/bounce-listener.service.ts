import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { BounceIntake } from '#mail/bounces/bounce-intake.service.js';
import { tokenOfAddress } from '#mail/bounces/bounce-token.js';

/** Recipients one message may name: a relay's report goes to one VERP address. */
const MAX_RECIPIENTS = 20;

/** An SMTP reply for smtp-server: the code and the text the client sees. */
function reply(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

/**
 * The worker's bounce listener: an SMTP server on BOUNCE_SMTP_PORT (the bounce domain's MX, port
 * 25 mapped to it) that accepts mail only for `bounces+<token>@BOUNCE_DOMAIN`, no AUTH, no TLS, at
 * most BOUNCE_MAX_BYTES per message, and hands each report to `BounceIntake`. A report is answered
 * 250 once it is recorded; a database failure answers 451, so the relay tries again later.
 */
@Injectable()
export class BounceListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('BounceListener');
  private server: SMTPServer | null = null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly intake: BounceIntake,
  ) {}

  /** The port it listens on (the configured one), or null when BOUNCE_DOMAIN is unset. */
  get port(): number | null {
    const addr = this.server?.server.address() as AddressInfo | null | undefined;
    return addr ? addr.port : null;
  }

  async onApplicationBootstrap(): Promise<void> {
    const bounces = this.config.bounces;
    if (!bounces) return;
    const server = new SMTPServer({
      name: bounces.domain,
      banner: 'Mailroom bounce listener',
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      size: bounces.maxBytes,
      maxClients: 100,
      socketTimeout: 60_000,
      logger: false,
      onRcptTo: (address, session, cb) => {
        if (session.envelope.rcptTo.length >= MAX_RECIPIENTS) return cb(reply(452, '4.5.3 Too many recipients'));
        if (tokenOfAddress(address.address, bounces.domain) === null) {
          return cb(reply(550, '5.1.1 No such recipient here'));
        }
        cb();
      },
      onData: (stream, session, cb) => this.data(stream, session, bounces.domain, cb),
    });
    // A client that drops its connection is no failure of the listener.
    server.on('error', (err) => this.logger.debug(`SMTP session error: ${err.message}`));
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'EADDRINUSE' ? ' (another worker on this host? give each its own port)' : '';
        reject(
          new Error(
            `The bounce listener cannot listen on ${bounces.host}:${bounces.port} (BOUNCE_SMTP_HOST, BOUNCE_SMTP_PORT): ${err.code ?? err.message}${hint}`,
          ),
        );
      };
      server.server.once('error', failed);
      server.listen(bounces.port, bounces.host, () => {
        server.server.off('error', failed);
        resolve();
      });
    });
    this.server = server;
    this.logger.log(`Listening for bounces to bounces+…@${bounces.domain} on ${bounces.host}:${bounces.port}`);
  }

  private data(
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    domain: string,
    cb: (err?: Error | null) => void,
  ): void {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => {
      // Past the size limit smtp-server keeps reading to the end of DATA and flags the stream: keep nothing more.
      if (!stream.sizeExceeded) chunks.push(c);
    });
    stream.on('error', (err: Error) => cb(err));
    stream.on('end', () => {
      if (stream.sizeExceeded) {
        cb(reply(552, '5.3.4 Message too big for a delivery report'));
        return;
      }
      const tokens = session.envelope.rcptTo
        .map((r) => tokenOfAddress(r.address, domain))
        .filter((t): t is string => t !== null);
      this.intake.receive(Buffer.concat(chunks), tokens).then(
        () => cb(),
        (err: unknown) => {
          this.logger.error(`Bounce report not recorded: ${err instanceof Error ? err.message : String(err)}`);
          cb(reply(451, '4.3.0 Temporary failure, try again later'));
        },
      );
    });
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
