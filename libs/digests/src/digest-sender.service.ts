import { InjectQueue } from '@nestjs/bullmq';
import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Queue } from 'bullmq';
import * as mimeFuncs from 'nodemailer/lib/mime-funcs/index.js';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { LedgerPg } from '#db/ledger-pg.service.js';
import { rows } from '#db/sql.js';
import { headerValue } from '#mail/mail-renderer.service.js';
import {
  MailTransport,
  type PermitAhead,
  type SendGate,
  classifySmtpError,
  isHardBounce,
  isPolicyRejection,
} from '#mail/mail-transport.service.js';
import { SLOT_MS, type SendGrant, SendRateLimiter } from '#mail/send-rate-limiter.service.js';
import {
  listUnsubscribeHeaders,
  listUnsubscribeValue,
  SubscriptionMailService,
} from '#mail/subscription-mail.service.js';
import { DIGEST_QUEUE, type DigestJob, jobIds } from '#queue/jobs.js';
import { emailHash, signToken } from '#subscriptions/tokens.js';
import { BulkMessageTemplate, MessageBuffer } from '#mail/bulk-message.js';
import { DigestRenderer, type IssueTemplates, hasTestCopySlots, testCopyOf } from './digest-renderer.service.js';
import { type DigestRow, DigestsRepository, type Recipient } from './digests.repository.js';
import { LedgerWriter, type SentRecord } from './ledger-writer.js';
import { Revocations } from './revocations.service.js';

/** RFC 2919 `List-ID: "phrase" <id>`, quoted or encoded as nodemailer's own `list` option does it. */
export function listIdValue(name: string, id: string): string {
  const phrase = headerValue(name).replace(/\x7f/g, ' ');
  const quoted = mimeFuncs.isPlainText(phrase) ? mimeFuncs.quoteString(phrase) : mimeFuncs.encodeWord(phrase);
  return `${quoted} <${id}>`;
}

export type DigestOutcome = 'planned' | 'sent' | 'skipped' | 'cancelled' | 'partial';

const ENQUEUE_CHUNK = 500;
/**
 * Send positions a worker asks the global limiter for at once (one statement per this many
 * messages); a grant holds no more than what is left of its 50 ms slot, so at low rates it is smaller.
 */
export const GRANT_SIZE = 64;
/** After the first, the fan-out writes the ledger this many batches' worth of rows a statement. */
const FAN_OUT_PAGE_BATCHES = 20;
/**
 * Sending places per SMTP connection, and rows a place claims at once. A place claims its next
 * messages in one ledger round trip and sends them one after the other; with two places a
 * connection stays busy through a round trip.
 * - While the worker hears revocation notices (see `Revocations`), a place claims
 *   `CLAIMS_AHEAD` rows: an unsubscribe or a cancel that commits after the claim still stops the
 *   claimed messages not yet handed to SMTP, and the ledger sees one round trip per sixteen
 *   messages instead of one per two.
 * - Without them (the listening connection is down), `CLAIMS_PER_PLACE`: each claimed row not yet
 *   sent is a message that an unsubscribe landing at that moment can no longer stop, at most
 *   2 × 2 per connection.
 */
const PLACES_PER_CONNECTION = 2;
const CLAIMS_PER_PLACE = 2;
const CLAIMS_AHEAD = 16;
/** PostgreSQL regex for an SMTP reply with enhanced status 5.7.x ("554 5.7.1", "550-5.7.26"). */
const POLICY_RE = '\\m5\\d\\d[ -]5\\.7\\.';

/**
 * The worker's digest send permits: taken from the global limiter a few at a time and handed to
 * the senders of all its batches in turn (one queue: with one per batch, a batch could hold
 * permits that its senders, waiting behind the other batch's for a connection, cannot use before
 * they expire). Each permit is a position in its 50 ms slot and is used at that position's time
 * (see `SendRateLimiter.grant`), so every worker's mail leaves on one even grid at the rate
 * instead of each slot's share going out at its start.
 */
export class Permits {
  private grant: SendGrant | null = null;
  /** The grant after `grant`, asked for once half of it was used. */
  private ahead: Promise<SendGrant> | null = null;
  /** Positions of `grant` used (or dropped). */
  private used = 0;
  /** Sends the batches under way may still ask for: no more than that is taken from the limiter. */
  private remaining = 0;
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly limiter: SendRateLimiter) {}

  /** Skips the grant's positions more than a slot overdue. */
  private dropStale(): void {
    const stale = Date.now() - SLOT_MS;
    while (this.grant && this.used < this.grant.count && this.grant.dueAt(this.used) < stale) this.used += 1;
  }

  /** The current grant while it has positions left. */
  private current(): SendGrant | null {
    return this.grant && this.used < this.grant.count ? this.grant : null;
  }

  /** A batch starts: up to `n` more sends. */
  expect(n: number): void {
    this.remaining += n;
  }

  /** A batch ends with `n` of its expected sends not asked for (skipped, failed, or stopped). */
  forget(n: number): void {
    this.remaining = Math.max(0, this.remaining - n);
  }

  /** Waits until the next send position is due (see `reserve`): the message goes out now. */
  async take(): Promise<void> {
    const wait = (await this.reserve()) - Date.now();
    // Timers are good to a millisecond: at high rates several permits go per wait.
    if (wait >= 1) await new Promise((resolve) => setTimeout(resolve, wait));
  }

  /**
   * The next send position, without waiting for it: when it is due (ms since the epoch). Its
   * message goes out at that time, or up to a slot after it (as `take` would have dropped it as
   * stale after that); a message that cannot go by then takes a new one.
   */
  reserve(): Promise<number> {
    const next = this.chain.then(async () => {
      // A position more than a slot overdue (the senders were busy) is dropped, not sent late
      // together with the ones due now.
      this.dropStale();
      let grant = this.current();
      if (!grant) {
        // The grant asked for ahead, unless it went stale too (the senders were away meanwhile).
        const ahead = this.ahead;
        this.ahead = null;
        if (ahead) {
          this.grant = await ahead;
          this.used = 0;
          this.dropStale();
          grant = this.current();
        }
        if (!grant) {
          grant = await this.limiter.grant(Math.max(1, Math.min(this.remaining, GRANT_SIZE)));
          this.grant = grant;
          this.used = 0;
        }
      }
      // Once half of a grant is used, the next one is asked for (when more sends are expected than
      // it has left): the limiter's round trip then runs while the rest of this one is sent, instead
      // of holding every waiting sender when it runs out.
      const left = grant.count - this.used;
      if (!this.ahead && this.used * 2 >= grant.count && this.remaining > left) {
        const ahead = this.limiter.grant(Math.min(this.remaining - left, GRANT_SIZE));
        // A failed request is seen by the take that waits on it; none need be seen before.
        ahead.catch(() => undefined);
        this.ahead = ahead;
      }
      const due = grant.dueAt(this.used);
      this.used += 1;
      this.remaining = Math.max(0, this.remaining - 1);
      return due;
    });
    this.chain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }
}

/**
 * Sending places, `PLACES_PER_CONNECTION` per SMTP connection, shared by the lanes of all the worker's batches: a lane
 * holds one while it takes a send permit, claims and sends, so a permit is used within about one
 * message time instead of waiting deep in nodemailer's pool queue (where late permits would go
 * out together in a burst).
 *
 * A free place goes to the waiting lane of the batch that started first. Shared in turn instead,
 * the batches a worker runs at once (`DIGEST_CONCURRENCY`) went at one pace and ran dry together;
 * the places then stood idle while the next batches started (their ranges read, suppressions
 * checked, first rows claimed). Oldest first, one batch drains at a time while the others are
 * ready to fill its places, and a batch starting meanwhile does so behind them.
 */
export class Places {
  /** Waiting lanes, oldest batch first (FIFO within a batch). */
  private waiters: { rank: number; go: () => void }[] = [];
  constructor(private free: number) {}

  /** A place for a lane of the batch ranked `rank` (lower goes first). */
  async acquire(rank: number): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((go) => {
      let i = this.waiters.length;
      while (i > 0 && this.waiters[i - 1].rank > rank) i -= 1;
      this.waiters.splice(i, 0, { rank, go });
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next.go();
    else this.free += 1;
  }

  /** Lanes waiting for a place. */
  get waiting(): number {
    return this.waiters.length;
  }
}

/** One digest's shared message parts (see `DigestSender.issueMail`). */
interface IssueMail {
  d: DigestRow;
  /** The renderer's cache key for this issue's compiled templates. */
  key: string;
  issue: IssueTemplates;
  from: { name: string; address: string } | string;
  fromAddress: string;
  listId: string;
  /** The message's shared MIME parts, for `BulkMessageTemplate.build` per recipient. */
  template: BulkMessageTemplate;
}

/** The worker's side of digests: plan (articles, render once, ledger, batches) and send batches exactly once. */
@Injectable()
export class DigestSender implements BeforeApplicationShutdown {
  private readonly logger = new Logger(DigestSender.name);
  /** Set on SIGTERM: batches stop claiming rows; messages in flight finish. */
  private stopping = false;

  private readonly batches = new Set<Promise<unknown>>();
  private readonly publicHost: string;
  private readonly connections: Places;
  /** Batches started here, in order: a batch's rank for the sending places. */
  private batchesStarted = 0;
  /** Messages this worker may have between a claim and SMTP's answer; also the lanes per batch. */
  private readonly places: number;
  /** Send permits for every batch this worker runs. */
  private readonly permits: Permits;
  /** Message buffers of lanes that ended, for the next lanes (see `MessageBuffer`). */
  private readonly spareBuffers: MessageBuffer[] = [];
  /** One ledger writer per digest being sent here, shared by its concurrent batches. */
  private readonly ledgers = new Map<string, { writer: LedgerWriter; users: number }>();

  /** SIGTERM: stop claiming, let messages already handed to SMTP finish (within 25 s) before anything closes. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    const deadline = new Promise((r) => setTimeout(r, 25_000).unref());
    await Promise.race([Promise.allSettled([...this.batches]), deadline]);
  }

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @InjectQueue(DIGEST_QUEUE) private readonly queue: Queue,
    private readonly repo: DigestsRepository,
    private readonly ledgerPg: LedgerPg,
    private readonly renderer: DigestRenderer,
    private readonly transport: MailTransport,
    private readonly limiter: SendRateLimiter,
    private readonly mail: SubscriptionMailService,
    private readonly revocations: Revocations,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.publicHost = new URL(config.publicUrl).hostname;
    this.places = PLACES_PER_CONNECTION * Math.max(1, config.smtp.maxConnections);
    this.permits = new Permits(limiter);
    this.connections = new Places(this.places);
  }

  /** A schedule fired: one digest per firing (the job id is the key), planned at once. */
  async fromSchedule(newsletterId: number, firingKey: string, dueAt: Date): Promise<DigestOutcome> {
    const { id } = await this.repo.create(this.ds, newsletterId, dueAt, 'schedule', firingKey);
    return this.plan(id);
  }

  /** Planning is idempotent: a retried or re-delivered plan job picks up where the last one stopped. */
  async plan(digestId: string): Promise<DigestOutcome> {
    const step = await this.ds.transaction(async (em) => {
      const d = await this.repo.find(em, digestId, true);
      if (!d) return 'skipped' as const;
      if (d.status !== 'scheduled' && d.status !== 'sending')
        return d.status === 'cancelled' ? ('cancelled' as const) : ('skipped' as const);
      if (d.status === 'scheduled') {
        const lateMs = Date.now() - d.send_at.getTime();
        if (lateMs > this.config.digest.graceMinutes * 60_000) {
          await this.repo.setStatus(
            em,
            d.id,
            'skipped',
            `past due: it was due at ${d.send_at.toISOString()}, more than ${this.config.digest.graceMinutes} minutes before it could be sent`,
          );
          return 'skipped' as const;
        }
        // A composed digest came with its articles, in its order: no candidate selection then.
        const attached = await this.repo.articles(em, d.id);
        const articles =
          attached.length > 0
            ? attached
            : await this.repo.candidateArticles(em, d.newsletter_id, this.config.digest.maxArticles, d.id);
        if (articles.length === 0) {
          await this.repo.setStatus(em, d.id, 'skipped', 'no new articles since the last digest');
          return 'skipped' as const;
        }
        if (attached.length === 0)
          await this.repo.attachArticles(
            em,
            d.id,
            articles.map((a) => a.id),
          );
        await this.repo.setStatus(em, d.id, 'sending');
      }
      return 'continue' as const;
    });
    if (step !== 'continue') return step;

    const d = (await this.repo.find(this.ds, digestId))!;
    const render = async () => {
      if (d.html_template) return;
      const articles = await this.repo.articles(this.ds, d.id);
      const issue = await this.renderer.renderIssue(d.newsletter_name, articles, d.send_at);
      await this.repo.storeTemplates(this.ds, d.id, issue);
    };
    let recipients: number;
    if (d.recipients !== null) {
      // A retried plan whose fan-out had finished: the batches again (the ledger makes a second job harmless).
      await render();
      await this.enqueueBatches(d.id);
      recipients = d.recipients;
    } else recipients = await this.fanOut(d, render);
    // Nobody to send to is not a send: recorded as skipped with the reason, never as "sent".
    if (recipients === 0 && (await this.skipEmpty(d.id))) {
      this.logger.log(`Digest ${d.id} skipped: no active subscribers`);
      return 'skipped';
    }
    if (await this.repo.completeIfDone(this.ds, d.id)) this.logger.log(`Digest ${d.id} sent (no recipient left)`);
    this.logger.log(`Digest ${d.id} planned for ${recipients} recipients`);
    return 'planned';
  }

  /** A digest that reached 0 recipients: `skipped`, reason "no active subscribers" (false if it is no longer sending). */
  private async skipEmpty(digestId: string): Promise<boolean> {
    const r = await rows(
      this.ds,
      `UPDATE digests SET status = 'skipped', finished_at = now(), reason = 'no active subscribers'
        WHERE id = $1 AND status = 'sending' AND recipients = 0 RETURNING 1`,
      [digestId],
    );
    return r.length > 0;
  }

  /**
   * The ledger is written a page of recipients at a time, and each page's batches are queued as
   * soon as it is in: the first mail goes out once the issue is rendered and the first page (one
   * batch for each of a worker's concurrent batch jobs) is written, not after the whole audience
   * is (at a million recipients that took about 17 s). The first page's statistics (the
   * database's work) are gathered while the issue renders (the worker's: MJML holds its thread for
   * tens of milliseconds, so it starts once the page is in and `ANALYZE` is on its way). Each is
   * kept when the other fails, and a retried plan redoes only what is missing (pages already
   * written stay, their rows are not added twice). The recipient count is set last: until then no
   * batch can mark the digest sent.
   */
  private async fanOut(d: DigestRow, render: () => Promise<void>): Promise<number> {
    const { batchSize, concurrency } = this.config.digest;
    const firstSize = batchSize * concurrency;
    let page = await this.repo.fanOutPage(this.ds, d.id, d.newsletter_id, '0', firstSize);
    const [analyzed, rendered] = await Promise.allSettled([
      page.n > 0 ? this.repo.analyzeLedger(this.ds) : Promise.resolve(),
      render(),
    ]);
    if (rendered.status === 'rejected') throw rendered.reason;
    if (analyzed.status === 'rejected') throw analyzed.reason;
    const size = Math.max(firstSize, batchSize * FAN_OUT_PAGE_BATCHES);
    let asked = firstSize;
    let after = '0';
    let pages = 0;
    while (page.last !== null) {
      await this.enqueueBatches(d.id, undefined, after, page.last);
      after = page.last;
      pages += 1;
      if (page.n < asked) break;
      asked = size;
      page = await this.repo.fanOutPage(this.ds, d.id, d.newsletter_id, after, size);
    }
    // The whole audience is in: statistics that know it (the first page's are kept when it was all).
    if (pages > 1) await this.repo.analyzeLedger(this.ds);
    return this.repo.setRecipients(this.ds, d.id);
  }

  /**
   * Re-queues the batches of a digest whose jobs were lost (a queue that came back empty, jobs
   * that failed for good). The ledger makes a second job for a range harmless.
   */
  async resume(digestId: string, round: string): Promise<number> {
    return this.enqueueBatches(digestId, round);
  }

  /**
   * Keyset pages over the ledger (after `from`, up to `upTo` when given), enqueued with addBulk;
   * memory holds one chunk of job ranges at a time.
   */
  private async enqueueBatches(
    digestId: string,
    round?: string,
    from = '0',
    upTo: string | null = null,
  ): Promise<number> {
    let after = from;
    let total = 0;
    let chunk: {
      name: 'send-digest-batch';
      data: Extract<DigestJob, { name: 'send-digest-batch' }>['data'];
      opts: { jobId: string };
    }[] = [];
    for (;;) {
      const range = await this.repo.nextRange(this.ds, digestId, after, this.config.digest.batchSize, upTo);
      if (range) {
        chunk.push({
          name: 'send-digest-batch',
          data: { digestId, fromSubscriberId: range.from, toSubscriberId: range.to },
          opts: {
            jobId: round
              ? `${jobIds.digestBatch(digestId, range.from)}-r${round}`
              : jobIds.digestBatch(digestId, range.from),
          },
        });
        after = range.to;
      }
      if (chunk.length >= ENQUEUE_CHUNK || (!range && chunk.length > 0)) {
        await this.queue.addBulk(chunk);
        total += chunk.length;
        chunk = [];
      }
      if (!range) return total;
    }
  }

  private issueOf(d: DigestRow): IssueTemplates {
    return { subject: d.subject ?? '', html: d.html_template ?? '', text: d.text_template ?? '' };
  }

  private fromOf(d: {
    from_name: string | null;
    from_email: string | null;
    newsletter_name: string;
  }): { name: string; address: string } | string {
    if (d.from_email) return { name: headerValue(d.from_name ?? d.newsletter_name), address: d.from_email };
    if (this.config.mailFrom) return this.config.mailFrom;
    return { name: headerValue(d.newsletter_name), address: `newsletter@${this.publicHost}` };
  }

  /** What every message of one digest shares, worked out once per batch rather than per recipient. */
  private issueMail(d: DigestRow, key = `digest:${d.id}`): IssueMail {
    const from = this.fromOf(d);
    const issue = this.issueOf(d);
    const fromAddress = typeof from === 'string' ? (/<([^>]+)>/.exec(from)?.[1] ?? from) : from.address;
    const listId = listIdValue(d.newsletter_name, `${d.newsletter_slug}.${this.publicHost}`);
    return {
      d,
      key,
      issue,
      from,
      fromAddress,
      listId,
      template: new BulkMessageTemplate({
        from,
        fromAddress,
        subject: issue.subject,
        headers: { 'List-ID': listId, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
      }),
    };
  }

  private unsubscribeUrl(m: IssueMail, subscriptionId: string | null): string {
    return subscriptionId
      ? `${this.config.publicUrl}/unsubscribe/${signToken(this.config.appSecret, 'unsubscribe', subscriptionId)}`
      : `${this.config.publicUrl}/subscribe?newsletter=${encodeURIComponent(m.d.newsletter_slug)}`;
  }

  private vars(r: { email: string; name: string | null }, unsubscribeUrl: string) {
    return {
      greeting: r.name ? `Hi ${r.name},` : 'Hello,',
      email: r.email,
      unsubscribeUrl,
      preferencesUrl: unsubscribeUrl,
    };
  }

  /** The message as nodemailer options (test copies, and recipients the spliced form does not fit). */
  private message(m: IssueMail, r: { email: string; name: string | null }, subscriptionId: string | null) {
    const unsubscribeUrl = this.unsubscribeUrl(m, subscriptionId);
    const mail = this.renderer.personalizeForSending(m.key, m.issue, this.vars(r, unsubscribeUrl));
    return {
      from: m.from,
      to: { name: headerValue(r.name ?? ''), address: r.email },
      subject: mail.subject,
      html: mail.html,
      text: mail.text,
      // Headers and the text part, where they need encoding at all: base64 costs a fraction of quoted-printable.
      textEncoding: 'base64' as const,
      headers: {
        'List-ID': { prepared: true, value: m.listId },
        ...listUnsubscribeHeaders(unsubscribeUrl),
      },
    };
  }

  /**
   * One batch: claim each delivery row before SMTP, mark it after. Sent rows are never sent again;
   * rows a crashed attempt left in flight are sent again (at-least-once for those alone).
   */
  async sendBatch(digestId: string, from: string, to: string): Promise<DigestOutcome> {
    const run = this.runBatch(digestId, from, to);
    this.batches.add(run);
    try {
      return await run;
    } finally {
      this.batches.delete(run);
    }
  }

  private async runBatch(digestId: string, from: string, to: string): Promise<DigestOutcome> {
    if (this.stopping) throw new Error('worker shutting down: batch left to another worker');
    const rank = this.batchesStarted++;
    await this.revocations.start();
    const d = await this.repo.find(this.ds, digestId);
    if (!d || d.status !== 'sending' || !d.html_template) return d?.status === 'cancelled' ? 'cancelled' : 'skipped';
    // Sends this worker has not recorded yet (the database was away) are written first: their
    // rows must not look abandoned to the release below.
    await this.ledgers.get(digestId)?.writer.drain();
    const released = await this.repo.releaseInFlight(
      this.ds,
      digestId,
      from,
      to,
      this.config.reliability.deliveryStaleSeconds,
    );
    if (released)
      this.logger.warn(
        `Digest ${digestId} batch ${from}-${to}: ${released} message(s) were in flight at a crash and will be sent again`,
      );
    const recipients = await this.repo.pendingRecipients(this.ds, digestId, from, to);

    // Suppressed addresses (keyed hashes survive erasure) are skipped in one query.
    const hashes = recipients.map((r) => emailHash(this.config.appSecret, r.email));
    const suppressed = new Set(
      (
        await rows<{ h: Buffer }>(
          this.ds,
          `SELECT email_hash AS h FROM suppressions WHERE email_hash = ANY($1::bytea[])`,
          [hashes],
        )
      ).map((x) => x.h.toString('hex')),
    );
    const skip = recipients.filter((_, i) => suppressed.has(hashes[i].toString('hex')));
    await this.repo.skipMany(
      this.ds,
      digestId,
      skip.map((r) => r.subscriberId),
      'suppressed',
    );
    const queue = recipients.filter((_, i) => !suppressed.has(hashes[i].toString('hex')));

    const mail = this.issueMail(d);
    const permits = this.permits;
    let asked = 0;
    const ledger = this.ledgerFor(digestId);
    let stopped = false;
    let transient: unknown = null;
    let broken: unknown = null;
    // Rows claimed ahead whose revocation notices may have been missed (the listening connection
    // dropped in between) go back to pending and are claimed again, first.
    const again: Recipient[] = [];
    const next = (() => {
      let i = 0;
      return () =>
        stopped || broken || this.stopping ? undefined : (again.pop() ?? (i < queue.length ? queue[i++] : undefined));
    })();
    const revocations = this.revocations;
    // A lane holds a sending place while it claims its next rows (one round trip) and sends them
    // in turn, each right after its send permit; the sent records go to the ledger writer, which
    // group-commits them with the next claims.
    const lane = async () => {
      const buffer = this.spareBuffers.pop() ?? new MessageBuffer();
      try {
        await laneSends(buffer);
      } finally {
        if (this.spareBuffers.length < this.places) this.spareBuffers.push(buffer);
      }
    };
    const laneSends = async (buffer: MessageBuffer) => {
      for (let r = next(); r; r = next()) {
        await this.connections.acquire(rank);
        try {
          // The epoch whose notices cover this claim, and the last notice before it: every
          // revocation committed after the claim's snapshot is heard after `mark`, before the
          // claimed message's turn (or within a message time of it).
          const epoch = revocations.live ? revocations.epoch : null;
          const mark = revocations.mark;
          const size = epoch === null ? CLAIMS_PER_PLACE : CLAIMS_AHEAD;
          const group = [r];
          while (group.length < size) {
            const more = next();
            if (!more) break;
            group.push(more);
          }
          const claims = await ledger.writer.claimAll(group.map((x) => x.subscriberId));
          for (let k = 0; k < group.length; k += 1) {
            const claim = claims[k];
            const x = group[k];
            // This row (when claimed) and the claimed rows after it.
            const rest = () => group.filter((_, j) => j >= k && claims[j] === 'claimed');
            if (claim === 'stopped') {
              stopped = true;
              // Claimed with it, not sent: back to pending for whoever resumes the digest.
              await this.unclaim(digestId, rest());
              return;
            }
            // Held by another attempt (a retried or resumed batch): it is that attempt's to send.
            if (claim === 'taken') continue;
            if (claim === 'ineligible') {
              await this.repo.skipMany(this.ds, digestId, [x.subscriberId], 'unsubscribed or no longer mailable');
              continue;
            }
            if (broken || this.stopping) {
              await this.unclaim(digestId, rest());
              return;
            }
            if (epoch !== null) {
              if (revocations.since(`d:${digestId}`, mark)) {
                stopped = true;
                await this.unclaim(digestId, rest());
                return;
              }
              if (revocations.epoch !== epoch) {
                const left = rest();
                await this.unclaim(digestId, left);
                again.push(...left.reverse());
                break;
              }
              if (revocations.since(`n:${x.subscriptionId}`, mark) || revocations.since(`s:${x.subscriberId}`, mark)) {
                await this.repo.finish(
                  this.ds,
                  digestId,
                  x.subscriberId,
                  'skipped',
                  null,
                  'unsubscribed or no longer mailable',
                );
                continue;
              }
            }
            // The send permit last, once the message has a connected SMTP connection and right
            // before its bytes go out: a permit is used within its slot, not after a ledger round
            // trip, a connection's opening or a wait in the pool's queue (any of which would bunch
            // sends, as the first messages after a start did when they waited for their connections).
            // A sending thread gets the permit with the message (`reserve`) and uses it once its
            // connection is ready, if that is still within a slot of its time; else it asks (`take`).
            let counted = false;
            const count = () => {
              if (!counted) asked += 1;
              counted = true;
            };
            const sent = await this.deliver(
              mail,
              x,
              buffer,
              (err) => {
                transient ??= err;
              },
              {
                take: () => {
                  count();
                  return permits.take();
                },
                reserve: () => {
                  count();
                  return permits.reserve();
                },
              },
            );
            if (sent) ledger.writer.recordSent(sent);
          }
        } finally {
          this.connections.release();
        }
      }
    };
    permits.expect(queue.length);
    try {
      // Every lane is awaited even when one fails (the database went away): no sender is left running unsupervised.
      await Promise.all(
        Array.from({ length: this.places }, () =>
          lane().catch((err: unknown) => {
            broken ??= err;
          }),
        ),
      );
      // Messages that went out are recorded before the batch ends, whatever else happened.
      await ledger.writer.drain();
    } finally {
      permits.forget(queue.length - asked);
      ledger.release();
    }
    if (broken) throw broken instanceof Error ? broken : new Error(String(broken));
    if (stopped) return 'cancelled';
    if (this.stopping) throw new Error('worker shutting down: the rest of this batch is left to the next attempt');
    if (await this.repo.completeIfDone(this.ds, digestId)) this.logger.log(`Digest ${digestId} sent`);
    if (transient) throw transient instanceof Error ? transient : new Error(String(transient));
    return 'sent';
  }

  /** Rows claimed but not sent (the batch is stopping): pending again, for the next attempt. */
  private async unclaim(digestId: string, rows: Recipient[]): Promise<void> {
    for (const r of rows) await this.repo.finish(this.ds, digestId, r.subscriberId, 'pending', null, null);
  }

  /** The ledger writer of a digest, shared by the batches of it this worker runs at once. */
  private ledgerFor(digestId: string): { writer: LedgerWriter; release: () => void } {
    let entry = this.ledgers.get(digestId);
    if (!entry) {
      entry = {
        writer: new LedgerWriter((ids, sent) => this.repo.claimMany(this.ledgerPg, digestId, ids, sent)),
        users: 0,
      };
      this.ledgers.set(digestId, entry);
    }
    entry.users += 1;
    const e = entry;
    return {
      writer: e.writer,
      release: () => {
        e.users -= 1;
        if (e.users === 0 && e.writer.unwritten === 0 && this.ledgers.get(digestId) === e)
          this.ledgers.delete(digestId);
      },
    };
  }

  /** Sends one claimed message; returns it when it went out, for the caller to record as sent. */
  private async deliver(
    m: IssueMail,
    r: Recipient,
    buffer: MessageBuffer,
    onTransient: (err: unknown) => void,
    permit: { take: SendGate; reserve: PermitAhead },
  ): Promise<SentRecord | undefined> {
    const { d } = m;
    let messageId: string;
    try {
      const unsubscribeUrl = this.unsubscribeUrl(m, r.subscriptionId);
      const vars = this.vars(r, unsubscribeUrl);
      const spliced = this.renderer.personalizeSpliced(m.key, m.issue, vars);
      const to = { name: headerValue(r.name ?? ''), address: r.email };
      const headers = {
        'List-Unsubscribe': listUnsubscribeValue(unsubscribeUrl),
      };
      const built = spliced
        ? m.template.build({ to, headers, text: spliced.text, html7bit: spliced.html }, buffer)
        : null;
      ({ messageId } = built
        ? await this.transport.sendRaw(built, permit.take, permit.reserve)
        : await this.transport.sendBuilt(this.message(m, r, r.subscriptionId), permit.take, permit.reserve));
    } catch (err) {
      buffer.drop();
      const detail = (err instanceof Error ? err.message : String(err)).slice(0, 500);
      if (classifySmtpError(err) === 'permanent') {
        await this.repo.finish(this.ds, d.id, r.subscriberId, 'failed', null, detail);
        if (isHardBounce(err)) await this.mail.suppress(r.subscriberId, r.email, 'bounced', detail);
        else if (isPolicyRejection(err)) await this.pauseOnPolicy(d.id, detail);
      } else {
        // Back to pending: the batch job is retried with backoff and picks it up again.
        await this.repo.finish(this.ds, d.id, r.subscriberId, 'pending', null, detail);
        onTransient(err);
      }
      return undefined;
    }
    return { subscriberId: r.subscriberId, messageId };
  }

  /**
   * 5.7.x means the receiving side refuses us (reputation, authentication, policy): nobody is
   * suppressed, but past a limit the digest stops and says why instead of burning the list.
   */
  private async pauseOnPolicy(digestId: string, detail: string): Promise<void> {
    const [{ n }] = await rows<{ n: number }>(
      this.ds,
      `SELECT count(*)::int AS n FROM deliveries WHERE digest_id = $1 AND status = 'failed' AND detail ~ $2`,
      [digestId, POLICY_RE],
    );
    if (n < this.config.digest.policyFailureLimit) return;
    const stopped = await rows(
      this.ds,
      `UPDATE digests SET status = 'failed', finished_at = now(),
         reason = $2 WHERE id = $1 AND status = 'sending' RETURNING 1`,
      [
        digestId,
        `paused: ${n} messages were rejected by the receiving servers' policy (5.7.x), last: ${detail.slice(0, 200)}. Check the sending domain's SPF/DKIM/DMARC and reputation, then send a new digest.`,
      ],
    );
    if (stopped.length) this.logger.error(`Digest ${digestId} paused after ${n} policy rejections (5.7.x)`);
  }

  /** One test copy to any address; no delivery row, logged as a digest test. `requestedBy` names the sender in its footer. */
  async sendTest(
    digestId: string,
    to: string,
    requestedBy = 'a Mailroom user (console or admin API)',
  ): Promise<'sent' | 'skipped'> {
    const d = await this.repo.find(this.ds, digestId);
    if (!d) return 'skipped';
    // The issue as readers get it; rendered anew when not planned yet, or stored before test copies had their slots.
    let issue = d.html_template ? this.issueOf(d) : null;
    if (!issue || !hasTestCopySlots(issue.html)) {
      const articles = await this.repo.issueArticles(this.ds, d, this.config.digest.maxArticles);
      if (articles.length === 0) return 'skipped';
      issue = await this.renderer.renderIssue(d.newsletter_name, articles, d.send_at);
    }
    // A test copy says so, and carries no unsubscribe (header or link): no subscription stands behind it.
    const copy = testCopyOf(issue, requestedBy);
    const key = `test:${d.id}:${Date.now()}`;
    const mail = this.renderer.personalizeForSending(key, copy, {
      greeting: 'Hello,',
      email: to,
      unsubscribeUrl: '',
      preferencesUrl: '',
    });
    const { messageId } = await this.transport.sendBuilt({
      from: this.fromOf(d),
      to: { name: '', address: to },
      subject: mail.subject,
      html: mail.html,
      text: mail.text,
      textEncoding: 'base64',
      headers: {
        'List-ID': { prepared: true, value: listIdValue(d.newsletter_name, `${d.newsletter_slug}.${this.publicHost}`) },
      },
    });
    await this.ds.query(
      `INSERT INTO mail_log (subscriber_id, newsletter_id, kind, message_id, status, detail) VALUES (NULL, $1, 'digest-test', $2, 'sent', $3)`,
      [d.newsletter_id, messageId, `test copy of digest ${d.id}`],
    );
    return 'sent';
  }
}
