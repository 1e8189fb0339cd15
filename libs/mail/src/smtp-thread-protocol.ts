/** Messages between the main thread and its SMTP sending threads (see `SmtpThreads`). */

/** An SMTP connection pool's settings (`SmtpPool`); the lifecycle mail's nodemailer transporter takes the same. */
export interface PoolOptions {
  pool: true;
  maxConnections: number;
  maxMessages: number;
  host: string;
  port: number;
  secure: boolean;
  auth?: { user: string; pass: string };
  connectionTimeout: number;
  greetingTimeout: number;
  socketTimeout: number;
}

/** A sending thread's start: its share of the connections, as plain data. */
export interface ThreadInit {
  /** Marks the thread's data, so that the pool's module starts a thread only where one was meant. */
  role: 'smtp-thread';
  /** A permit reserved ahead (`due`) is used up to this long after its time (`SLOT_MS`), else the thread takes one. */
  permitGraceMs: number;
  options: PoolOptions;
}

export type ToThread =
  | {
      t: 'send';
      id: number;
      /** The message's bytes: shared memory (a sender's `MessageBuffer`) or a copy handed over. */
      bytes: SharedArrayBuffer | ArrayBuffer;
      offset: number;
      length: number;
      envelope: { from: string; to: string[] };
      /** The message needs a send permit: the thread asks for one (`take-permit`) unless `due` is still good. */
      permitted: boolean;
      /** A send permit reserved ahead: when it is due (ms since the epoch); see `SendPermits.reserve`. */
      due?: number;
    }
  | { t: 'permit'; id: number }
  | { t: 'no-permit'; id: number; message: string }
  | { t: 'close' };

/** An SMTP error's fields that `classifySmtpError` and the bounce checks read. */
export interface ThreadError {
  message: string;
  code?: string;
  responseCode?: number;
  response?: string;
}

export type ToMain =
  { t: 'take-permit'; id: number } | { t: 'sent'; id: number } | { t: 'failed'; id: number; error: ThreadError };
