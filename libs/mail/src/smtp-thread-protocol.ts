/** Messages between the main thread and its SMTP sending threads (see `SmtpThreads`). */

/** The thread's SMTP connections, as plain data (the thread opens its own TCP_NODELAY sockets). */
export interface ThreadInit {
  /** A permit reserved ahead (`due`) is used up to this long after its time (`SLOT_MS`), else the thread asks the gate. */
  aheadGraceMs: number;
  options: {
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
  };
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
      /** The message waits for an `open` (the send permit) once a connection has taken it. */
      gated: boolean;
      /** A send permit reserved ahead: when it is due (ms since the epoch); see `PermitAhead`. */
      due?: number;
    }
  | { t: 'open'; id: number }
  | { t: 'shut'; id: number; message: string }
  | { t: 'close' };

/** An SMTP error's fields that `classifySmtpError` and the bounce checks read. */
export interface ThreadError {
  message: string;
  code?: string;
  responseCode?: number;
  response?: string;
}

export type ToMain =
  { t: 'gate'; id: number } | { t: 'sent'; id: number } | { t: 'failed'; id: number; error: ThreadError };
