import { simpleParser, type ParsedMail } from 'mailparser';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';

export interface CapturedMail {
  envelope: { from: string; to: string[] };
  raw: string;
  parsed: ParsedMail;
}

/** What the server answers to a RCPT TO (null = accept). */
export type RcptHook = (address: string) => { code: number; message: string } | null;

/** A real SMTP server in-process: captures and parses every message it accepts. */
export class TestSmtp {
  readonly messages: CapturedMail[] = [];
  rcptHook: RcptHook = () => null;
  private server!: SMTPServer;
  port = 0;
  private waiters: (() => void)[] = [];

  /** With parse: false only envelopes are kept (a fast sink for large sends). */
  constructor(private readonly opts: { parse?: boolean } = {}) {}

  async start(): Promise<this> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo: (address, _session, cb) => {
        const r = this.rcptHook(address.address);
        if (r) {
          const err = new Error(r.message) as Error & { responseCode: number };
          err.responseCode = r.code;
          cb(err);
          return;
        }
        cb();
      },
      onData: (stream, session: SMTPServerSession, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          if (this.opts.parse === false) {
            this.messages.push({
              envelope: {
                from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                to: session.envelope.rcptTo.map((r) => r.address),
              },
              raw: '',
              parsed: {} as ParsedMail,
            });
            this.waiters.splice(0).forEach((w) => w());
            cb();
            return;
          }
          const raw = Buffer.concat(chunks).toString('utf8');
          simpleParser(raw)
            .then((parsed) => {
              this.messages.push({
                envelope: {
                  from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                  to: session.envelope.rcptTo.map((r) => r.address),
                },
                raw,
                parsed,
              });
              this.waiters.splice(0).forEach((w) => w());
              cb();
            })
            .catch((err: Error) => cb(err));
        });
      },
    });
    // Clients that die mid-session (a killed worker) reset their sockets: not an error of the test.
    this.server.on('error', () => undefined);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  to(address: string): CapturedMail[] {
    return this.messages.filter((m) => m.envelope.to.includes(address));
  }

  /** Waits until `predicate` holds over the captured messages. */
  async waitFor(predicate: (msgs: CapturedMail[]) => boolean, timeoutMs = 15_000): Promise<CapturedMail[]> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.messages)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for mail (have ${this.messages.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.messages;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
