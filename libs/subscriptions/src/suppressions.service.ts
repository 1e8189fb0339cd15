import { BadRequestException, Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { rows } from '#db/sql.js';
import { normalizeEmail } from './email.js';
import { SubscriptionsRepository } from './subscriptions.repository.js';
import { emailHash } from './tokens.js';

export type BounceType = 'hard' | 'soft' | 'complaint';
export type SuppressionReason = 'bounced' | 'complained' | 'manual' | 'erased';

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
    private readonly subscriptions: SubscriptionsRepository,
  ) {}

  hash(email: string): Buffer {
    return emailHash(this.config.appSecret, email);
  }

  async reasonFor(em: EntityManager | DataSource, email: string): Promise<SuppressionReason | null> {
    const r = await rows<{ reason: SuppressionReason }>(em, `SELECT reason FROM suppressions WHERE email_hash = $1`, [
      this.hash(email),
    ]);
    return r[0]?.reason ?? null;
  }

  /** Records a bounce or complaint for an address. Idempotent; a soft bounce changes nothing. */
  async recordEvent(rawEmail: string, type: BounceType, detail: string): Promise<'suppressed' | 'ignored' | 'invalid'> {
    const check = normalizeEmail(rawEmail);
    if (!check.ok) return 'invalid';
    if (type === 'soft') return 'ignored';
    const reason: SuppressionReason = type === 'complaint' ? 'complained' : 'bounced';
    await this.ds.transaction(async (em) => {
      await em.query(
        `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, $2, $3)
         ON CONFLICT (email_hash) DO UPDATE SET reason = CASE WHEN suppressions.reason = 'erased' THEN EXCLUDED.reason ELSE suppressions.reason END`,
        [this.hash(check.email), reason, detail.slice(0, 500)],
      );
      await em.query(`UPDATE subscribers SET status = $2, updated_at = now() WHERE email = $1 AND status = 'ok'`, [
        check.email,
        reason,
      ]);
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
      const r = await rows<{ reason: SuppressionReason; created: boolean }>(
        em,
        `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, 'manual', $2)
         ON CONFLICT (email_hash) DO UPDATE SET
           reason = CASE WHEN suppressions.reason = 'erased' THEN EXCLUDED.reason ELSE suppressions.reason END,
           detail = CASE WHEN suppressions.reason = 'erased' THEN EXCLUDED.detail ELSE suppressions.detail END
         RETURNING reason, (xmax = 0) AS created`,
        [this.hash(check.email), detail],
      );
      await em.query(
        `UPDATE subscribers SET status = 'suppressed', updated_at = now() WHERE email = $1 AND status = 'ok'`,
        [check.email],
      );
      return { email: check.email, reason: r[0].reason, created: r[0].created };
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
    const found = await rows<{
      id: string;
      email_hash: Buffer;
      reason: SuppressionReason;
      detail: string | null;
      created_at: Date;
    }>(
      this.ds,
      `SELECT id, email_hash, reason, detail, created_at FROM suppressions
        WHERE ($1::bigint IS NULL OR id < $1::bigint) ORDER BY id DESC LIMIT $2`,
      [before, limit + 1],
    );
    const page = found.slice(0, limit);
    const emails = await this.addressesOf(page);
    return {
      items: page.map((r) => {
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
      }),
      next: found.length > limit ? page[page.length - 1].id : null,
    };
  }

  /** One suppression by id (with its address when known), or null. */
  async find(id: string): Promise<SuppressionItem | null> {
    if (!/^[1-9][0-9]{0,18}$/.test(id)) return null;
    const r = await rows<{
      id: string;
      email_hash: Buffer;
      reason: SuppressionReason;
      detail: string | null;
      created_at: Date;
    }>(this.ds, `SELECT id, email_hash, reason, detail, created_at FROM suppressions WHERE id = $1`, [id]);
    if (r.length === 0) return null;
    const known =
      r[0].reason === 'erased' ? undefined : (await this.addressesOf(r)).get(r[0].email_hash.toString('hex'));
    return {
      id: r[0].id,
      email: known?.email ?? null,
      subscriberId: known?.id ?? null,
      hashPrefix: r[0].email_hash.toString('hex').slice(0, 12),
      reason: r[0].reason,
      detail: r[0].detail,
      createdAt: r[0].created_at,
    };
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
      const page = await rows<{ id: string; email: string }>(
        this.ds,
        `SELECT id, email FROM subscribers WHERE status <> 'ok' AND updated_at >= $1 AND id > $2 ORDER BY id LIMIT 5000`,
        [since, after],
      );
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
    return this.liftWhere(`email_hash = $1`, [this.hash(check.email)], by, check.email);
  }

  /** Lifts a suppression by its id (console). */
  async liftById(id: string, by: string): Promise<LiftOutcome> {
    const found = await this.find(id);
    if (!found) return { lifted: false };
    return this.liftWhere(`id = $1`, [found.id], by, found.email);
  }

  /**
   * Deletes the suppression and nothing more: no subscription becomes active again. The
   * subscriber may be mailed again (status back to 'ok'), but every subscription that was active
   * when the address bounced or complained is ended (with a consent record saying why), so only
   * a new double opt-in brings mail back. The lift is logged (who, reason, hash prefix).
   */
  private async liftWhere(where: string, params: unknown[], by: string, email: string | null): Promise<LiftOutcome> {
    const outcome = await this.ds.transaction(async (em) => {
      const gone = await rows<{ id: string; email_hash: Buffer; reason: SuppressionReason }>(
        em,
        `DELETE FROM suppressions WHERE ${where} RETURNING id, email_hash, reason`,
        params,
      );
      if (gone.length === 0) return { lifted: false } as const;
      const { reason, email_hash } = gone[0];
      let ended: number[] = [];
      if (email) {
        const sub = await rows<{ id: string }>(
          em,
          `UPDATE subscribers SET status = 'ok', updated_at = now() WHERE email = $1 RETURNING id`,
          [email],
        );
        if (sub.length > 0) {
          ended = (
            await rows<{ newsletter_id: number }>(
              em,
              `UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
                WHERE subscriber_id = $1 AND status = 'active' RETURNING newsletter_id`,
              [sub[0].id],
            )
          ).map((r) => r.newsletter_id);
          await this.subscriptions.recordConsent(em, sub[0].id, ended, 'unsubscribe', {
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
