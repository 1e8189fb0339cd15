import { Injectable } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import type { SubscriptionStatus } from '#db/entities/index.js';
import { rows } from '#db/sql.js';

type Db = EntityManager | DataSource;

export interface RecordSubscription {
  slug: string;
  name: string;
  status: SubscriptionStatus;
  topics: string[];
  source: string | null;
  createdAt: Date;
  confirmedAt: Date | null;
  unsubscribedAt: Date | null;
}

export interface RecordConsent {
  action: string;
  newsletter: string | null;
  ip: string | null;
  userAgent: string | null;
  sourceUrl: string | null;
  consentText: string | null;
  createdAt: Date;
}

export interface RecordMail {
  kind: string;
  newsletter: string | null;
  status: string;
  detail: string | null;
  messageId: string | null;
  createdAt: Date;
}

/** A click on a tracked link in a digest (what the GDPR export shows of `link_clicks`). */
export interface RecordClick {
  digestId: string;
  articleUrl: string;
  clickedAt: Date;
  verdict: 'human' | 'machine';
  /** Why a click was judged automatic (`scanner`, `prefetch`, `early`, `burst`); null for a human one. */
  reason: string | null;
}

export interface RecordDelivery {
  digestId: string;
  newsletter: string;
  status: string;
  finishedAt: Date | null;
}

/**
 * What is stored about one subscriber beyond its own row (subscriptions, consent records, mail log,
 * digest deliveries, clicks on tracked links): the console's subscriber page (recent, by newsletter name) and the GDPR
 * export (everything, by slug, with the stored column names).
 */
@Injectable()
export class SubscriberRecordsRepository {
  async subscriptions(db: Db, subscriberId: string): Promise<RecordSubscription[]> {
    return rows<RecordSubscription>(
      db,
      `SELECT n.slug, n.name, s.status, s.topics, s.source, s.created_at AS "createdAt",
              s.confirmed_at AS "confirmedAt", s.unsubscribed_at AS "unsubscribedAt"
         FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id
        WHERE s.subscriber_id = $1 ORDER BY n.name`,
      [subscriberId],
    );
  }

  /** The latest 200, newest first. */
  async recentConsent(db: Db, subscriberId: string): Promise<RecordConsent[]> {
    return rows<RecordConsent>(
      db,
      `SELECT c.action, n.name AS newsletter, host(c.ip) AS ip, c.user_agent AS "userAgent",
              c.source_url AS "sourceUrl", c.consent_text AS "consentText", c.created_at AS "createdAt"
         FROM consent_records c LEFT JOIN newsletters n ON n.id = c.newsletter_id
        WHERE c.subscriber_id = $1 ORDER BY c.created_at DESC, c.id DESC LIMIT 200`,
      [subscriberId],
    );
  }

  /** The latest 100, newest first. */
  async recentMail(db: Db, subscriberId: string): Promise<RecordMail[]> {
    return rows<RecordMail>(
      db,
      `SELECT m.kind, n.name AS newsletter, m.status, m.detail, m.message_id AS "messageId", m.created_at AS "createdAt"
         FROM mail_log m LEFT JOIN newsletters n ON n.id = m.newsletter_id
        WHERE m.subscriber_id = $1 ORDER BY m.created_at DESC, m.id DESC LIMIT 100`,
      [subscriberId],
    );
  }

  /** The latest 50 digests, newest first. */
  async recentDeliveries(db: Db, subscriberId: string): Promise<RecordDelivery[]> {
    return rows<RecordDelivery>(
      db,
      `SELECT d.digest_id AS "digestId", n.name AS newsletter, d.status, d.finished_at AS "finishedAt"
         FROM deliveries d JOIN digests g ON g.id = d.digest_id JOIN newsletters n ON n.id = g.newsletter_id
        WHERE d.subscriber_id = $1 ORDER BY d.digest_id DESC LIMIT 50`,
      [subscriberId],
    );
  }

  /** Everything, for the GDPR export: the subscriber's row and each table's rows, oldest first. */
  async export(
    db: Db,
    subscriberId: string,
  ): Promise<{
    subscriber: unknown;
    subscriptions: unknown[];
    consent: unknown[];
    mail: unknown[];
    digests: unknown[];
    clicks: RecordClick[];
    bounceReports: unknown[];
  }> {
    const [subscriber] = await rows(
      db,
      `SELECT email, name, timezone, status, created_at, updated_at FROM subscribers WHERE id = $1`,
      [subscriberId],
    );
    const subscriptions = await rows(
      db,
      `SELECT n.slug AS newsletter, s.status, s.topics, s.source, s.created_at, s.confirmed_at, s.unsubscribed_at, s.guide_sent_at,
              s.guide_downloaded_at
       FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id WHERE s.subscriber_id = $1 ORDER BY n.slug`,
      [subscriberId],
    );
    const consent = await rows(
      db,
      `SELECT c.action, n.slug AS newsletter, host(c.ip) AS ip, c.user_agent, c.source_url, c.consent_text, c.consent_version, c.created_at
       FROM consent_records c LEFT JOIN newsletters n ON n.id = c.newsletter_id WHERE c.subscriber_id = $1 ORDER BY c.id`,
      [subscriberId],
    );
    const mail = await rows(
      db,
      `SELECT m.kind, n.slug AS newsletter, m.message_id, m.status, m.detail, m.created_at
       FROM mail_log m LEFT JOIN newsletters n ON n.id = m.newsletter_id WHERE m.subscriber_id = $1 ORDER BY m.id`,
      [subscriberId],
    );
    const digests = await rows(
      db,
      `SELECT d.digest_id, n.slug AS newsletter, d.status, d.message_id, d.finished_at
       FROM deliveries d JOIN digests g ON g.id = d.digest_id JOIN newsletters n ON n.id = g.newsletter_id
       WHERE d.subscriber_id = $1 ORDER BY d.digest_id`,
      [subscriberId],
    );
    const clicks = await rows<RecordClick>(
      db,
      `SELECT c.digest_id::text AS "digestId", a.url AS "articleUrl", c.clicked_at AS "clickedAt", c.verdict, c.reason
       FROM link_clicks c JOIN articles a ON a.id = c.article_id WHERE c.subscriber_id = $1 ORDER BY c.clicked_at, c.id`,
      [subscriberId],
    );
    // Delivery reports that came back to this reader's VERP addresses (docs/bounces.md).
    const bounceReports = await rows(
      db,
      `SELECT b.outcome, b.status, b.mail_kind, b.digest_id, b.detail, b.received_at
       FROM bounce_reports b WHERE b.subscriber_id = $1 ORDER BY b.id`,
      [subscriberId],
    );
    return { subscriber, subscriptions, consent, mail, digests, clicks, bounceReports };
  }
}
