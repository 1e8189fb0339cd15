import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { REVOCATION_CHANNEL, RevocationNoticesRepository } from './revocation-notices.repository.js';

export { REVOCATION_CHANNEL } from './revocation-notices.repository.js';
/** A notice is kept this long: far longer than any claimed row waits for its send. */
const KEEP_MS = 10 * 60_000;
const RECONNECT_MS = 1_000;
/** How long the listener waits for its own test notice before it counts itself deaf. */
const PING_TIMEOUT_MS = 3_000;
/** A deaf listener (notices do not come back: a transaction-pooling proxy) tries again this much later. */
const DEAF_RETRY_MS = 60_000;

/**
 * The digest sender's ear on `NOTIFY mailroom_revocations` (see the RevocationNotices migration):
 * every subscription that stopped being active, subscriber that stopped being mailable and digest
 * that stopped sending since this worker started listening. With it, the sender may claim
 * delivery rows several messages ahead and still drop one whose reader unsubscribed after the
 * claim: the notice is delivered when the unsubscribe commits, before the claimed message's turn.
 *
 * One dedicated connection (LISTEN needs a session of its own; it does not work through a
 * transaction-pooling proxy). While it is down, `epoch` tells a claim made before the outage from
 * one made after, and `live` is false: the sender then claims row by row, as without it.
 */
@Injectable()
export class Revocations implements OnApplicationShutdown {
  private readonly logger = new Logger(Revocations.name);
  private client: pg.Client | null = null;
  private closed = false;
  private connecting = false;
  private listening = false;
  private retry: NodeJS.Timeout | null = null;
  /** Changes whenever listening starts or stops: a claim is only covered by the notices of its own epoch. */
  private currentEpoch = 0;
  /** Each key's latest notice: its number in the order heard, and when (ms). */
  private readonly notices = new Map<string, { seq: number; at: number }>();
  private seq = 0;
  private lastPrune = Date.now();
  private readonly pings = new Map<string, () => void>();

  constructor(private readonly repo: RevocationNoticesRepository) {}

  /** Listening now: every revocation committed from here on is heard (see `since`). */
  get live(): boolean {
    return this.listening;
  }

  get epoch(): number {
    return this.currentEpoch;
  }

  /** Starts listening (once; reconnects by itself). Resolves when the first attempt has ended. */
  async start(): Promise<void> {
    if (this.closed || this.client || this.connecting) return;
    this.connecting = true;
    const client = this.repo.listenerClient();
    const lost = (why: string, retryMs = RECONNECT_MS) => {
      if (this.client !== client) return;
      this.client = null;
      if (this.listening) this.logger.warn(`revocation notices lost (${why}): claiming row by row until back`);
      else if (retryMs !== RECONNECT_MS)
        this.logger.warn(`revocation notices unavailable (${why}): claiming row by row`);
      this.setListening(false);
      client.end().catch(() => undefined);
      if (!this.closed) this.retry ??= setTimeout(() => ((this.retry = null), void this.start()), retryMs).unref();
    };
    client.on('notification', (n) => {
      if (n.channel !== REVOCATION_CHANNEL || !n.payload) return;
      if (n.payload.startsWith('ping:')) this.pings.get(n.payload)?.();
      else this.note(n.payload);
    });
    client.on('error', (err) => lost(err.message));
    client.on('end', () => lost('connection closed'));
    this.client = client;
    try {
      await client.connect();
      await this.repo.listen(client);
      // A notice of its own, sent like the triggers' (from another session), must come back: behind
      // a transaction-pooling proxy LISTEN succeeds and then hears nothing.
      if (!(await this.ping()))
        return lost('a test notice did not come back; is a transaction-pooling proxy in between?', DEAF_RETRY_MS);
      if (this.client === client && !this.closed) this.setListening(true);
    } catch (err) {
      lost(err instanceof Error ? err.message : String(err));
    } finally {
      this.connecting = false;
    }
  }

  private async ping(): Promise<boolean> {
    const payload = `ping:${randomUUID()}`;
    let timer: NodeJS.Timeout | undefined;
    const heard = new Promise<boolean>((resolve) => {
      this.pings.set(payload, () => resolve(true));
      timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    });
    try {
      await this.repo.notify(payload);
      return await heard;
    } finally {
      clearTimeout(timer);
      this.pings.delete(payload);
    }
  }

  /** The number of the last notice heard: take it before a claim, ask `since` after. */
  get mark(): number {
    return this.seq;
  }

  /**
   * `n:<subscription id>`, `s:<subscriber id>` or `d:<digest id>` was revoked after notice `mark`.
   * A notice heard before a claim was sent committed before the claim's snapshot, which already
   * saw it (and whatever came after: a reader who unsubscribed and subscribed again is mailable).
   */
  since(key: string, mark: number): boolean {
    return (this.notices.get(key)?.seq ?? 0) > mark;
  }

  /** Records a notice: `n:`, `s:` or `d:` and an id, the migration's payload format. */
  private note(key: string): void {
    const now = Date.now();
    this.seq += 1;
    this.notices.delete(key); // kept in the order heard, for the pruning below
    this.notices.set(key, { seq: this.seq, at: now });
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    for (const [k, { at }] of this.notices) {
      if (now - at <= KEEP_MS) break; // insertion order: the rest are newer
      this.notices.delete(k);
    }
  }

  private setListening(on: boolean): void {
    if (this.listening === on) return;
    this.listening = on;
    this.currentEpoch += 1;
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    this.setListening(false);
    await client?.end().catch(() => undefined);
  }
}
