import { BadRequestException, Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { normalizeEmail } from './email.js';
import { SubscribersRepository } from './subscribers.repository.js';
import { SubscriptionsRepository } from './subscriptions.repository.js';
import { type SuppressionReason, type SuppressionRow, SuppressionsRepository } from './suppressions.repository.js';
import { emailHash } from './tokens.js';

export type BounceType = 'hard' | 'soft' | 'complaint';
export type { SuppressionReason } from './suppressions.repository.js';

/**
 * The suppression list: keyed hashes of addresses that must not be mailed. Bounces and
 * complaints from SMTP or from provider webhooks land here; an erased address leaves only its hash.
 */
@Injectable()
export class SuppressionsService {
  private readonly logger = new Logger('Suppressions');

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly repo: SuppressionsRepository,
    private readonly subscribers: SubscribersRepository,
    private readonly subscriptions: SubscriptionsRepository,
  ) {}

  hash(email: string): Buffer {
    return emailHash(this.config.appSecret, email);
  }

  /** Why the address is on the list (an erasure's hash included), or null. */
  async reasonFor(em: EntityManager | DataSource, email: string): Promise<SuppressionReason | null> {
    return this.repo.reasonFor(em, this.hash(email));
  }

  /** Records a bounce or complaint for an address. Idempotent; a soft bounce changes nothing. */
  async recordEvent(rawEmail: string, type: BounceType, detail: string): Promise<'suppressed' | 'ignored' | 'invalid'> {
    const check = normalizeEmail(rawEmail);
    if (!check.ok) return 'invalid';
    if (type === 'soft') return 'ignored';
    const reason = type === 'complaint' ? 'complained' : 'bounced';
    await this.ds.transaction(async (em) => {
      await this.repo.recordBounce(em, this.hash(check.email), reason, detail.slice(0, 500));
      await this.subscribers.markUnmailable(em, check.email, reason);
    });
    return 'suppressed';
  }

  /**
   * Adds an address to the suppression list by hand (console, admin API), with the staff's reason.
   * Like a hard bounce, it ends the address's mail at once: the subscriber is marked `suppressed`,
   * which every send checks. Idempotent: an address already suppressed keeps its first reason
   * (an erased one's hash takes this reason). `created` says whether it was new.
   */
  async suppress(
    rawEmail: string,
    reason: string | null,
    by: string,
  ): Promise<{ email: string; reason: SuppressionReason; created: boolean }> {
    const check = normalizeEmail(rawEmail);
    if (!check.ok) throw new BadRequestException([`email: ${check.reason}`]);
    const detail =
      (reason ?? '')
        .replace(/[\r\n]+/g, ' ')
        .trim()
        .slice(0, 500) || null;
    const result = await this.ds.transaction(async (em) => {
      const r = await this.repo.addManual(em, this.hash(check.email), detail);
      await this.subscribers.markUnmailable(em, check.email, 'suppressed');
      return { email: check.email, reason: r.reason, created: r.created };
    });
    this.logger.log(`Address suppressed by ${by}: reason ${result.reason}${result.created ? '' : ' (already listed)'}`);
    return result;
  }

  /**
   * One page of the suppression list, newest first (keyset on id). The address is shown when a
   * subscriber row still holds it (bounced/complained/suppressed subscribers); an erased address
   * or one that never subscribed is known only by its hash.
   */
  async list(opts: { before?: string; limit?: number } = {}): Promise<SuppressionPage> {
    const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
    const before = opts.before && /^[1-9][0-9]{0,18}$/.test(opts.before) ? opts.before : null;
    const found = await this.repo.page(this.ds, before, limit + 1);
    const page = found.slice(0, limit);
    const emails = await this.addressesOf(page);
    return {
      items: page.map((r) => item(r, emails)),
      next: found.length > limit ? page[page.length - 1].id : null,
    };
  }

  /** One suppression by id (with its address when known), or null. */
  async find(id: string): Promise<SuppressionItem | null> {
    if (!/^[1-9][0-9]{0,18}$/.test(id)) return null;
    const r = await this.repo.byId(this.ds, id);
    return r ? item(r, await this.addressesOf([r])) : null;
  }

  /**
   * The subscriber rows whose address hashes to one of these suppressions. A suppression marks its
   * subscriber (status not 'ok', updated_at set in the same transaction), so only those rows changed
   * since the oldest suppression are candidates; they are hashed in pages.
   */
  private async addressesOf(
    list: { email_hash: Buffer; created_at: Date }[],
  ): Promise<Map<string, { id: string; email: string }>> {
    const wanted = new Set(list.map((r) => r.email_hash.toString('hex')));
    const out = new Map<string, { id: string; email: string }>();
    if (wanted.size === 0) return out;
    const since = new Date(Math.min(...list.map((r) => r.created_at.getTime())) - 60_000);
    let after = '0';
    for (let scanned = 0; scanned < 500_000 && out.size < wanted.size;) {
      const page = await this.subscribers.unmailableChangedSince(this.ds, since, after, 5000);
      if (page.length === 0) break;
      for (const s of page) {
        const h = this.hash(s.email).toString('hex');
        if (wanted.has(h)) out.set(h, s);
      }
      scanned += page.length;
      after = page[page.length - 1].id;
    }
    return out;
  }

  /** Lifts the suppression of an address (admin API). */
  async lift(rawEmail: string, by: string): Promise<LiftOutcome> {
    const check = normalizeEmail(rawEmail);
    if (!check.ok) throw new BadRequestException([check.reason]);
    return this.liftWhere({ hash: this.hash(check.email) }, by, check.email);
  }

  /** Lifts a suppression by its id (console). */
  async liftById(id: string, by: string): Promise<LiftOutcome> {
    const found = await this.find(id);
    if (!found) return { lifted: false };
    return this.liftWhere({ id: found.id }, by, found.email);
  }

  /**
   * Deletes the suppression and nothing more: no subscription becomes active again. The
   * subscriber may be mailed again (status back to 'ok'), but every subscription that was active
   * when the address bounced or complained is ended (with a consent record saying why), so only
   * a new double opt-in brings mail back. The lift is logged (who, reason, hash prefix).
   */
  private async liftWhere(
    key: { hash: Buffer } | { id: string },
    by: string,
    email: string | null,
  ): Promise<LiftOutcome> {
    const outcome = await this.ds.transaction(async (em) => {
      const gone = await this.repo.remove(em, key);
      if (!gone) return { lifted: false } as const;
      const { reason, email_hash } = gone;
      let ended: number[] = [];
      if (email) {
        const subscriberId = await this.subscribers.restore(em, email);
        if (subscriberId !== null) {
          ended = await this.subscriptions.endActive(em, subscriberId);
          await this.subscriptions.recordConsent(em, subscriberId, ended, 'unsubscribe', {
            ip: null,
            userAgent: `suppression lifted by ${by}`.slice(0, 500),
            sourceUrl: null,
            consentText: `Suppression (${reason}) lifted; the subscription needs a new double opt-in`,
            consentVersion: null,
          });
        }
      }
      return {
        lifted: true,
        reason,
        hashPrefix: email_hash.toString('hex').slice(0, 12),
        endedSubscriptions: ended.length,
      } as const;
    });
    if (outcome.lifted)
      this.logger.log(
        `Suppression lifted by ${by}: reason ${outcome.reason}, hash ${outcome.hashPrefix}…, ${outcome.endedSubscriptions} subscription(s) left to a new opt-in`,
      );
    return outcome;
  }
}

/** A list entry, with its address when a subscriber row still holds it (never for an erasure). */
function item(r: SuppressionRow, emails: Map<string, { id: string; email: string }>): SuppressionItem {
  const known = r.reason === 'erased' ? undefined : emails.get(r.email_hash.toString('hex'));
  return {
    id: r.id,
    email: known?.email ?? null,
    subscriberId: known?.id ?? null,
    hashPrefix: r.email_hash.toString('hex').slice(0, 12),
    reason: r.reason,
    detail: r.detail,
    createdAt: r.created_at,
  };
}

export interface SuppressionItem {
  id: string;
  /** null: erased, or never a subscriber here (only the hash is stored). */
  email: string | null;
  subscriberId: string | null;
  hashPrefix: string;
  reason: SuppressionReason;
  detail: string | null;
  createdAt: Date;
}

export interface SuppressionPage {
  items: SuppressionItem[];
  /** The `before` cursor of the next (older) page. */
  next: string | null;
}

export type LiftOutcome =
  { lifted: false } | { lifted: true; reason: SuppressionReason; hashPrefix: string; endedSubscriptions: number };
