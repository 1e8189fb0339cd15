import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';
import { normalizeEmail } from './email.js';
import { SubscriptionsRepository } from './subscriptions.repository.js';
import { SuppressionsService } from './suppressions.service.js';

export interface SubscriberPatch {
  name?: string;
  topics?: string[];
  timezone?: string;
  newsletters?: Record<string, string>;
}

const ADMIN_CONTEXT = { ip: null, userAgent: 'admin API', sourceUrl: null };

/** Support staff acting on a reader's request, and the reader's GDPR rights (access, erasure). */
@Injectable()
export class SubscriberAdminService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: SubscriptionsRepository,
    private readonly suppressions: SuppressionsService,
  ) {}

  private email(raw: string): string {
    const check = normalizeEmail(raw);
    if (!check.ok) throw new BadRequestException([check.reason]);
    return check.email;
  }

  private async subscriberId(email: string): Promise<string> {
    const r = await rows<{ id: string }>(this.ds, `SELECT id FROM subscribers WHERE email = $1`, [email]);
    if (r.length === 0) throw new NotFoundException(`No subscriber with address ${email}`);
    return r[0].id;
  }

  /** `by` names who acted in the consent record (default: the admin API). */
  async patch(rawEmail: string, patch: SubscriberPatch, by?: string): Promise<void> {
    const email = this.email(rawEmail);
    const id = await this.subscriberId(email);
    const changes = Object.entries(patch.newsletters ?? {});
    for (const [slug, status] of changes) {
      if (status !== 'unsubscribed') {
        throw new BadRequestException([
          `newsletters.${slug} can only be "unsubscribed": only double opt-in or import makes a subscription active`,
        ]);
      }
    }
    await this.ds.transaction(async (em) => {
      if (patch.name !== undefined || patch.timezone !== undefined) {
        await em.query(
          `UPDATE subscribers SET name = COALESCE($2, name), timezone = COALESCE($3, timezone), updated_at = now() WHERE id = $1`,
          [id, patch.name ?? null, patch.timezone ?? null],
        );
      }
      if (patch.topics !== undefined) {
        await em.query(`UPDATE subscriptions SET topics = $2::text[] WHERE subscriber_id = $1`, [
          id,
          [...new Set(patch.topics)],
        ]);
      }
      if (changes.length > 0) {
        const slugs = changes.map(([slug]) => slug);
        const found = await rows<{ id: number; slug: string }>(
          em,
          `SELECT id, slug FROM newsletters WHERE slug = ANY($1::text[])`,
          [slugs],
        );
        const missing = slugs.filter((s) => !found.some((f) => f.slug === s));
        if (missing.length)
          throw new BadRequestException([
            `newsletters contains an unknown newsletter: ${missing.map((m) => `"${m}"`).join(', ')}`,
          ]);
        const left = await rows<{ newsletter_id: number }>(
          em,
          `UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
           WHERE subscriber_id = $1 AND newsletter_id = ANY($2::int[]) AND status <> 'unsubscribed' RETURNING newsletter_id`,
          [id, found.map((f) => f.id)],
        );
        await this.repo.recordConsent(
          em,
          id,
          left.map((l) => l.newsletter_id),
          'unsubscribe',
          by ? { ...ADMIN_CONTEXT, userAgent: by.slice(0, 500) } : ADMIN_CONTEXT,
        );
      }
    });
  }

  /** Everything stored about an address (GDPR access). */
  async export(rawEmail: string): Promise<Record<string, unknown>> {
    const email = this.email(rawEmail);
    const id = await this.subscriberId(email);
    const [subscriber] = await rows(
      this.ds,
      `SELECT email, name, timezone, status, created_at, updated_at FROM subscribers WHERE id = $1`,
      [id],
    );
    const subscriptions = await rows(
      this.ds,
      `SELECT n.slug AS newsletter, s.status, s.topics, s.source, s.created_at, s.confirmed_at, s.unsubscribed_at, s.guide_sent_at
       FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id WHERE s.subscriber_id = $1 ORDER BY n.slug`,
      [id],
    );
    const consent = await rows(
      this.ds,
      `SELECT c.action, n.slug AS newsletter, host(c.ip) AS ip, c.user_agent, c.source_url, c.consent_text, c.consent_version, c.created_at
       FROM consent_records c LEFT JOIN newsletters n ON n.id = c.newsletter_id WHERE c.subscriber_id = $1 ORDER BY c.id`,
      [id],
    );
    const mail = await rows(
      this.ds,
      `SELECT m.kind, n.slug AS newsletter, m.message_id, m.status, m.detail, m.created_at
       FROM mail_log m LEFT JOIN newsletters n ON n.id = m.newsletter_id WHERE m.subscriber_id = $1 ORDER BY m.id`,
      [id],
    );
    const digests = await rows(
      this.ds,
      `SELECT d.digest_id, n.slug AS newsletter, d.status, d.message_id, d.finished_at
       FROM deliveries d JOIN digests g ON g.id = d.digest_id JOIN newsletters n ON n.id = g.newsletter_id
       WHERE d.subscriber_id = $1 ORDER BY d.digest_id`,
      [id],
    );
    const suppressed = await this.suppressions.reasonFor(this.ds, email);
    return {
      subscriber,
      subscriptions,
      consentRecords: consent,
      mailLog: mail,
      digestDeliveries: digests,
      suppression: suppressed,
    };
  }

  /** Erasure: personal data removed; only a keyed hash stays on the suppression list. */
  async erase(rawEmail: string): Promise<void> {
    const email = this.email(rawEmail);
    const id = await this.subscriberId(email);
    await this.ds.transaction(async (em) => {
      await em.query(
        `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, 'erased', 'erased on request')
         ON CONFLICT (email_hash) DO NOTHING`,
        [this.suppressions.hash(email)],
      );
      // Outbox events name the subscriber by id only; drop the ones still waiting.
      await em.query(`DELETE FROM outbox WHERE dispatched_at IS NULL AND payload->>'subscriberId' = $1`, [id]);
      await em.query(`DELETE FROM subscribers WHERE id = $1`, [id]);
    });
  }
}
