/**
 * Where a bulk message gets its send permit: the right to leave at a time the global rate allows
 * (see `SendRateLimiter.grant`). The SMTP pool asks for it once the message has a connected,
 * greeted connection of its own, so a permit is used within a few round trips of being taken.
 */
export interface SendPermits {
  /** Waits until a permit is due; the message's envelope goes out right after. */
  take(): Promise<void>;
  /**
   * A permit reserved before the message has a connection: resolves with when it is due (ms since
   * the epoch). A sending thread holds the message until then and sends it once its connection is
   * ready, if that is within a rate slot of the due time; later than that it calls `take`. It saves
   * the thread a round trip to the main thread per message. In-process sends use `take` alone.
   */
  reserve?(): Promise<number>;
}
