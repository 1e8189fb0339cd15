import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../config/src/config.js';
import { rows } from '../../db/src/sql.js';
import { normalizeEmail } from './email.js';
import { emailHash } from './tokens.js';

export type BounceType = 'hard' | 'soft' | 'complaint';
export type SuppressionReason = 'bounced' | 'complained' | 'manual' | 'erased';

/**
 * The suppression list: keyed hashes of addresses that must not be mailed. Bounces and
 * complaints from SMTP or from provider webhooks land here; an erased address leaves only its hash.
 */
@Injectable()
export class SuppressionsService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
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
}
