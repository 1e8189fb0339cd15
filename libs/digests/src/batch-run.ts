import type { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { AppConfig } from '#config/config.js';
import { MessageBuffer } from '#mail/bulk-message.js';
import { type MailTransport, routeLabel } from '#mail/mail-transport.service.js';
import type { SendPermits } from '#mail/send-permits.js';
import { classifySmtpError, isHardBounce, isPolicyRejection } from '#mail/smtp-errors.js';
import type { SubscriptionMailService } from '#mail/subscription-mail.service.js';
import { emailHash } from '#subscriptions/tokens.js';
import { type ClaimWatch, decideClaim } from './claim-decision.js';
import type { SuppressionsRepository } from '#subscriptions/suppressions.repository.js';
import type { DeliveriesRepository } from './deliveries.repository.js';
import type { DigestMessage } from './digest-message.js';
import type { BatchFilter, DigestsRepository, Recipient } from './digests.repository.js';
import type { Claim, LedgerWriter, LedgerWriters, SentRecord } from './ledger-writer.js';
import { BatchPermits, type Permits, RoutePermits } from './permits.js';
import type { Places } from './places.js';
import type { Revocations } from './revocations.service.js';

export type BatchOutcome = 'sent' | 'skipped' | 'cancelled';

/**
 * Rows a place claims at once (one ledger round trip), then sends one after the other.
 * - While the worker hears revocation notices (see `Revocations`), `CLAIMS_AHEAD`: an unsubscribe
 *   or a cancel that commits after the claim still stops the claimed messages not yet handed to
 *   SMTP, and the ledger sees one round trip per sixteen messages.
 * - Without them (the listening connection is down), `CLAIMS_PER_PLACE`: each claimed row not yet
 *   sent is a message that an unsubscribe landing at that moment can no longer stop, at most
 *   2 × 2 per connection.
 */
const CLAIMS_PER_PLACE = 2;
const CLAIMS_AHEAD = 16;

/** What every batch run uses of its worker, built once by `DigestSender`. */
export interface BatchTools {
  ds: DataSource;
  repo: DigestsRepository;
  deliveries: DeliveriesRepository;
  suppressions: SuppressionsRepository;
  transport: MailTransport;
  mail: SubscriptionMailService;
  revocations: Revocations;
  ledgers: LedgerWriters;
  permits: Permits;
  /** The worker's permits of an SMTP route's own rate (null: the route has none, or it is SMTP_URL). */
  routePermits: (route: string | null) => Permits | null;
  places: Places;
  /** Lanes per batch: the worker's sending places. */
  lanes: number;
  /** Message buffers of lanes that ended, for the next lanes (see `MessageBuffer`). */
  spareBuffers: MessageBuffer[];
  config: AppConfig;
  logger: Logger;
  /** Set on SIGTERM: batches stop claiming rows; messages in flight finish. */
  shutdown: { requested: boolean };
}

/**
 * One batch of a digest (a range of its delivery rows), sent exactly once: each row is claimed
 * before SMTP and recorded as sent after it. Its lanes (one per sending place) share this object's
 * state: the rows left, the rows to claim again first, and how the batch is ending.
 */
export class BatchRun {
  private readonly digestKey: string;
  private readonly permits: BatchPermits;
  /** The route's own permits, when its rate is limited (see `RoutePermits`). */
  private readonly routePermits: BatchPermits | null;
  /** What each message is handed to the transport with. */
  private readonly sendPermits: SendPermits;
  private ledger: LedgerWriter | null = null;
  /** Recipients in the range still pending, not suppressed; `next` is the first not yet taken. */
  private queue: Recipient[] = [];
  private next = 0;
  /** Rows claimed ahead whose revocation notices may have been missed: claimed again, first. */
  private readonly again: Recipient[] = [];
  /** The digest stopped (cancelled, paused): the batch ends as cancelled. */
  private stopped = false;
  /** A lane failed (the database went away): the batch breaks off and fails with this. */
  private laneFailed = false;
  private laneError: unknown = null;
  /** The first 4xx or connection failure: its rows went back to pending, and the batch is retried. */
  private transient: unknown = null;

  constructor(
    private readonly tools: BatchTools,
    private readonly message: DigestMessage,
    private readonly digestId: string,
    /** The batch's place in the worker's start order (see `Places`). */
    private readonly rank: number,
    /** The SMTP route its newsletter's mail leaves through (null: SMTP_URL). */
    private readonly route: string | null = null,
  ) {
    this.digestKey = `d:${digestId}`;
    this.permits = new BatchPermits(tools.permits);
    const own = tools.routePermits(route);
    this.routePermits = own ? new BatchPermits(own) : null;
    this.sendPermits = this.routePermits ? new RoutePermits(this.routePermits, this.permits) : this.permits;
  }

  /**
   * Sends the range's pending rows (those the filter keeps); rows a crashed attempt left in flight
   * are sent again.
   */
  async run(from: string, to: string, filter: BatchFilter = {}): Promise<BatchOutcome> {
    const { ds, repo, config, logger } = this.tools;
    const digestId = this.digestId;
    // Sends this worker has not recorded yet (the database was away) are written first: their
    // rows must not look abandoned to the release below.
    await this.tools.ledgers.existing(digestId)?.drain();
    const released = await repo.releaseInFlight(
      ds,
      digestId,
      from,
      to,
      config.reliability.deliveryStaleSeconds,
      filter,
    );
    if (released)
      logger.warn(
        `Digest ${digestId} batch ${from}-${to}: ${released} message(s) were in flight at a crash and will be sent again`,
      );
    this.queue = await this.withoutSuppressed(await repo.pendingRecipients(ds, digestId, from, to, filter));

    const ledger = this.tools.ledgers.use(digestId);
    this.ledger = ledger;
    this.permits.expect(this.queue.length);
    this.routePermits?.expect(this.queue.length);
    try {
      // Every lane is awaited even when one fails: no sender is left running unsupervised.
      await Promise.all(
        Array.from({ length: this.tools.lanes }, () => this.lane().catch((e: unknown) => this.fail(e))),
      );
      // Messages that went out are recorded before the batch ends, whatever else happened.
      await ledger.drain();
    } finally {
      this.permits.end();
      this.routePermits?.end();
      this.tools.ledgers.release(digestId, ledger);
    }
    if (this.laneFailed) throw asError(this.laneError);
    if (this.stopped) return 'cancelled';
    if (this.tools.shutdown.requested)
      throw new Error('worker shutting down: the rest of this batch is left to the next attempt');
    if (await repo.completeIfDone(ds, digestId)) logger.log(`Digest ${digestId} sent`);
    if (this.transient) throw asError(this.transient);
    return 'sent';
  }

  /** Suppressed addresses (keyed hashes survive erasure) are skipped in one query. */
  private async withoutSuppressed(recipients: Recipient[]): Promise<Recipient[]> {
    const { ds, repo, suppressions, config } = this.tools;
    const hashes = recipients.map((r) => emailHash(config.appSecret, r.email));
    const suppressed = await suppressions.suppressed(ds, hashes, 'mail');
    if (suppressed.size === 0) return recipients;
    const skip = hashes.map((h) => suppressed.has(h.toString('hex')));
    await repo.skipMany(
      ds,
      this.digestId,
      recipients.filter((_, i) => skip[i]).map((r) => r.subscriberId),
      'suppressed',
    );
    return recipients.filter((_, i) => !skip[i]);
  }

  private fail(err: unknown): void {
    if (this.laneFailed) return;
    this.laneFailed = true;
    this.laneError = err;
  }

  /** The batch is breaking off: a lane failed, or the worker is shutting down. */
  private get halting(): boolean {
    return this.laneFailed || this.tools.shutdown.requested;
  }

  /** The next row to claim, or undefined when there is none or the batch is ending. */
  private take(): Recipient | undefined {
    if (this.stopped || this.halting) return undefined;
    return this.again.pop() ?? (this.next < this.queue.length ? this.queue[this.next++] : undefined);
  }

  /**
   * One lane: holds a sending place while it claims its next rows (one round trip) and sends them
   * in turn, each right after its send permit; the sent records go to the ledger writer, which
   * group-commits them with the next claims.
   */
  private async lane(): Promise<void> {
    const { places, spareBuffers, lanes } = this.tools;
    const buffer = spareBuffers.pop() ?? new MessageBuffer();
    try {
      for (let r = this.take(); r; r = this.take()) {
        await places.acquire(this.rank);
        try {
          if (!(await this.claimAndSend(r, buffer))) return;
        } finally {
          places.release();
        }
      }
    } finally {
      if (spareBuffers.length < lanes) spareBuffers.push(buffer);
    }
  }

  /** Claims `first` and the rows after it in one round trip and acts on each; false when the lane ends. */
  private async claimAndSend(first: Recipient, buffer: MessageBuffer): Promise<boolean> {
    const revocations = this.tools.revocations;
    // The epoch whose notices cover this claim, and the last notice before it: every revocation
    // committed after the claim's snapshot is heard after `mark`, before the claimed message's turn.
    const watch: ClaimWatch | null = revocations.live
      ? { notices: revocations, epoch: revocations.epoch, mark: revocations.mark }
      : null;
    const size = watch ? CLAIMS_AHEAD : CLAIMS_PER_PLACE;
    const group = [first];
    while (group.length < size) {
      const more = this.take();
      if (!more) break;
      group.push(more);
    }
    const claims = await this.ledger!.claimAll(group.map((x) => x.subscriberId));
    for (let k = 0; k < group.length; k += 1) {
      const row = group[k];
      switch (decideClaim(claims[k], row, this.halting, watch, this.digestKey)) {
        case 'pass':
          continue;
        case 'skip':
          await this.skip(row, claims[k]);
          continue;
        case 'stop':
          this.stopped = true;
          await this.unclaim(claimedFrom(group, claims, k));
          return false;
        case 'halt':
          await this.unclaim(claimedFrom(group, claims, k));
          return false;
        case 'requeue': {
          const left = claimedFrom(group, claims, k);
          await this.unclaim(left);
          this.again.push(...left.reverse());
          return true;
        }
        case 'send': {
          const sent = await this.send(row, buffer);
          if (sent) this.ledger!.recordSent(sent);
        }
      }
    }
    return true;
  }

  /** A row no longer mailable: refused at the claim (still pending), or claimed and revoked since. */
  private async skip(r: Recipient, claim: Claim): Promise<void> {
    const { ds, repo } = this.tools;
    const detail = 'unsubscribed or no longer mailable';
    if (claim === 'ineligible') await repo.skipMany(ds, this.digestId, [r.subscriberId], detail);
    else await repo.finish(ds, this.digestId, r.subscriberId, 'skipped', null, detail);
  }

  /** Rows claimed but not sent (the batch is stopping): pending again, for the next attempt. */
  private async unclaim(rows: Recipient[]): Promise<void> {
    const { ds, repo } = this.tools;
    for (const r of rows) await repo.finish(ds, this.digestId, r.subscriberId, 'pending', null, null);
  }

  /**
   * Sends one claimed message at its send permit's time (taken once it has a connected SMTP
   * connection, right before its bytes go out); returns it when it went out, for the ledger.
   */
  private async send(r: Recipient, buffer: MessageBuffer): Promise<SentRecord | undefined> {
    const transport = this.tools.transport;
    let messageId: string;
    try {
      const built = this.message.build(r, buffer);
      ({ messageId } = built
        ? await transport.sendRaw(built, this.sendPermits, this.route)
        : await transport.sendBuilt(this.message.options(r), this.sendPermits, this.route));
    } catch (err) {
      // A write of the buffer may still be under way: the next message gets a new one.
      buffer.drop();
      await this.failed(r, err);
      return undefined;
    }
    return { subscriberId: r.subscriberId, messageId };
  }

  /**
   * The SMTP error policy: 5xx fails the row for good (5.1.x also suppresses the address, 5.7.x
   * counts towards pausing the digest); 4xx and connection failures put it back to pending and the
   * batch is retried with backoff.
   */
  private async failed(r: Recipient, err: unknown): Promise<void> {
    const { ds, repo, mail } = this.tools;
    const detail = (err instanceof Error ? err.message : String(err)).slice(0, 500);
    if (classifySmtpError(err) === 'permanent') {
      await repo.finish(ds, this.digestId, r.subscriberId, 'failed', null, detail);
      if (isHardBounce(err)) await mail.suppress(r.subscriberId, r.email, 'bounced', detail);
      else if (isPolicyRejection(err)) await this.pauseOnPolicy(detail);
    } else {
      await repo.finish(ds, this.digestId, r.subscriberId, 'pending', null, detail);
      this.transient ??= err;
    }
  }

  /**
   * 5.7.x means the receiving side refuses us (reputation, authentication, policy): nobody is
   * suppressed, but past a limit the digest stops and says why instead of burning the list. The
   * block is the route's (its server, its IP, its reputation): every digest sending through the same
   * route pauses with it, and digests on other routes go on.
   */
  private async pauseOnPolicy(detail: string): Promise<void> {
    const { ds, deliveries, config, logger } = this.tools;
    const n = await deliveries.policyRejections(ds, this.digestId);
    if (n < config.digest.policyFailureLimit) return;
    // The default route keeps the reason it always had; a named route is named.
    const route = this.route === null ? 'the default SMTP route (SMTP_URL)' : `SMTP route "${this.route}"`;
    const through = this.route === null ? '' : ` through ${route}`;
    const reason =
      `paused: ${n} messages were rejected by the receiving servers' policy (5.7.x)${through}, ` +
      `last: ${detail.slice(0, 200)}. Check the sending domain's SPF/DKIM/DMARC and the route's reputation, then send a new digest.`;
    const paused = await deliveries.pause(ds, this.digestId, reason);
    if (paused)
      logger.error(
        `Digest ${this.digestId} paused after ${n} policy rejections (5.7.x) on route ${routeLabel(this.route)}`,
      );
    const others = await deliveries.pauseRoute(
      ds,
      this.route,
      this.digestId,
      `paused: digest ${this.digestId} through ${route} met ${n} policy rejections (5.7.x), last: ${detail.slice(0, 200)}. The route is blocked; check its reputation, then send a new digest.`,
    );
    if (others.length > 0)
      logger.error(
        `Digest(s) ${others.join(', ')} paused with digest ${this.digestId}: route ${routeLabel(this.route)} is blocked`,
      );
  }
}

/** Row `k` of a claim group (when claimed) and the claimed rows after it. */
function claimedFrom(group: Recipient[], claims: Claim[], k: number): Recipient[] {
  return group.filter((_, j) => j >= k && claims[j] === 'claimed');
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
