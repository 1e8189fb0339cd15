export type Claim = 'claimed' | 'stopped' | 'taken' | 'ineligible';
export interface SentRecord {
  subscriberId: string;
  messageId: string;
}

/** One round trip: claim these rows, record those as sent; the claims' outcomes come back. */
export type LedgerWrite = (claims: string[], sent: SentRecord[]) => Promise<Map<string, Claim>>;

export interface LedgerWriterOptions {
  /** A sent record waits at most this long for a claim to ride with before it is written alone. */
  maxDelayMs: number;
  /** ... or until this many are waiting. */
  maxWaiting: number;
  /** Round trips under way at once: a claim that arrives during one need not wait for it to end. */
  maxTrips: number;
  /** `drain` retries a failed write this many times, backing off from 250 ms to 8 s (about 35 s in all). */
  retries: number;
}

const DEFAULTS: LedgerWriterOptions = { maxDelayMs: 10, maxWaiting: 64, maxTrips: 1, retries: 8 };

interface Waiter {
  id: string;
  resolve: (c: Claim) => void;
  reject: (e: unknown) => void;
}

/** A sent record and its place in the order records were handed in. */
interface Queued {
  record: SentRecord;
  seq: number;
  /** When it was handed in (ms, `performance.now()`): it is written by `maxDelayMs` after. */
  at: number;
}

/**
 * Group commit of one digest's delivery ledger for every batch this worker runs of it. Claims go
 * out at once, or as soon as the round trip under way ends (a sender waits on them); each round
 * trip takes every claim and sent record that is waiting, so one statement and one commit serve
 * many messages. A sent record is written with the next claim, or on its own `maxDelayMs` after
 * it was handed in (not as soon as a round trip ends, which would make a statement per message):
 * a message handed to SMTP is unrecorded for at most that long plus a round trip, which is what a
 * crash at that moment could send twice.
 * A row's claim and its sent record are never in the same or concurrent round trips: the record
 * only exists once its claim has come back. While the database is away, unwritten records are
 * retried on their own with backoff (up to 8 s apart) for as long as the process lives.
 */
export class LedgerWriter {
  private claims: Waiter[] = [];
  private sent: Queued[] = [];
  /** Round trips under way, with the lowest sequence number and the count of the records each carries. */
  private readonly trips = new Map<Promise<void>, { low: number; count: number }>();
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  private failures = 0;
  private lastError: unknown = null;
  private readonly opts: LedgerWriterOptions;

  constructor(
    private readonly write: LedgerWrite,
    opts: Partial<LedgerWriterOptions> = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  /** Claims one row; settles with its round trip. */
  claim(subscriberId: string): Promise<Claim> {
    return new Promise<Claim>((resolve, reject) => {
      this.claims.push({ id: subscriberId, resolve, reject });
      this.kick();
    });
  }

  /** Claims several rows in one round trip (the next one, if one is under way); settles with it. */
  claimAll(subscriberIds: string[]): Promise<Claim[]> {
    const claims = subscriberIds.map(
      (id) => new Promise<Claim>((resolve, reject) => this.claims.push({ id, resolve, reject })),
    );
    this.kick();
    return Promise.all(claims);
  }

  /** Records a message handed to SMTP; `drain` makes sure it is written. */
  recordSent(record: SentRecord): void {
    this.seq += 1;
    this.sent.push({ record, seq: this.seq, at: performance.now() });
    if (this.sent.length >= this.opts.maxWaiting) this.kick(true);
    else this.arm(this.opts.maxDelayMs);
  }

  /** How many sent records are not written yet (waiting or in a round trip). */
  get unwritten(): number {
    let n = this.sent.length;
    for (const t of this.trips.values()) n += t.count;
    return n;
  }

  private lowestUnwritten(): number {
    let low = this.sent.length > 0 ? this.sent[0].seq : Infinity;
    for (const t of this.trips.values()) low = Math.min(low, t.low);
    return low;
  }

  /**
   * Waits until every send recorded so far is written. While the database is away it keeps
   * trying with backoff; after `retries` failures in a row it gives up with the last error (the
   * records stay queued and are still retried; their rows stay claimed meanwhile).
   */
  async drain(): Promise<void> {
    const target = this.seq;
    while (this.lowestUnwritten() <= target) {
      this.kick(true);
      while (this.trips.size > 0) await Promise.all([...this.trips.keys()]);
      if (this.lowestUnwritten() > target) return;
      if (this.failures === 0) continue;
      if (this.failures > this.opts.retries) throw this.lastError;
      await new Promise((resolve) => setTimeout(resolve, this.backoff()));
    }
  }

  private backoff(): number {
    return Math.min(250 * 2 ** Math.max(0, this.failures - 1), 8000);
  }

  private arm(ms: number): void {
    // Unref'd: a retry must not keep a process that is otherwise done alive.
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.kick(true);
    }, ms).unref();
  }

  /** Starts a round trip for what is waiting: claims at once (up to `maxTrips`), sent records when due. */
  private kick(sentDue = false): void {
    if (this.claims.length === 0 && !(sentDue && this.sent.length > 0)) return;
    if (this.trips.size >= (this.claims.length > 0 ? this.opts.maxTrips : 1)) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const claims = this.claims;
    const sent = this.sent;
    this.claims = [];
    this.sent = [];
    const trip = this.roundTrip(claims, sent).finally(() => {
      this.trips.delete(trip);
      // What arrived meanwhile: claims go now; sent records when the oldest is due (a claim may
      // come to carry them first: a trip per record would cost a statement per message), or after
      // a backoff while the database fails.
      if (this.claims.length > 0) this.kick();
      else if (this.sent.length > 0) {
        if (this.failures > 0) this.arm(this.backoff());
        else {
          const due = this.sent[0].at + this.opts.maxDelayMs - performance.now();
          if (due <= 0) this.kick(true);
          else this.arm(due);
        }
      }
    });
    this.trips.set(trip, { low: sent.length > 0 ? sent[0].seq : Infinity, count: sent.length });
  }

  private async roundTrip(claims: Waiter[], sent: Queued[]): Promise<void> {
    try {
      const result = await this.write(
        claims.map((c) => c.id),
        sent.map((q) => q.record),
      );
      this.failures = 0;
      this.lastError = null;
      for (const c of claims) c.resolve(result.get(c.id) ?? 'taken');
    } catch (err) {
      // The records wait for the next round trip; the claims fail, and their senders stop (the
      // batch is retried).
      this.sent = sent.concat(this.sent).sort((x, y) => x.seq - y.seq);
      this.failures += 1;
      this.lastError = err;
      for (const c of claims) c.reject(err);
    }
  }
}

/** One `LedgerWriter` per digest being sent here, shared by the batches of it this worker runs at once. */
export class LedgerWriters {
  private readonly writers = new Map<string, { writer: LedgerWriter; users: number }>();

  constructor(private readonly writerFor: (digestId: string) => LedgerWriter) {}

  /** The digest's writer while a batch of it runs here (or records are still unwritten), else undefined. */
  existing(digestId: string): LedgerWriter | undefined {
    return this.writers.get(digestId)?.writer;
  }

  /** The digest's writer for one batch; `release` it when the batch ends. */
  use(digestId: string): LedgerWriter {
    let entry = this.writers.get(digestId);
    if (!entry) {
      entry = { writer: this.writerFor(digestId), users: 0 };
      this.writers.set(digestId, entry);
    }
    entry.users += 1;
    return entry.writer;
  }

  /** A batch is done with the digest's writer: forgotten once no batch uses it and all is written. */
  release(digestId: string, writer: LedgerWriter): void {
    const entry = this.writers.get(digestId);
    if (!entry || entry.writer !== writer) return;
    entry.users -= 1;
    if (entry.users === 0 && writer.unwritten === 0) this.writers.delete(digestId);
  }
}
