import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { SubscriptionStatus } from '#db/entities/index.js';
import { rows } from '#db/sql.js';
import { SubscriberAdminService } from './subscriber-admin.service.js';
import { SuppressionsService } from './suppressions.service.js';

export const SUBSCRIPTION_STATUSES = ['pending', 'active', 'unsubscribed'] as const;
export const SUBSCRIBER_STATUSES = ['bounced', 'complained', 'suppressed'] as const;
export type DirectoryStatus = (typeof SUBSCRIPTION_STATUSES)[number] | (typeof SUBSCRIBER_STATUSES)[number];

export interface DirectoryQuery {
  /** The start of an address (case-insensitive prefix match). */
  q?: string;
  newsletter?: string;
  status?: string;
  /** Keyset cursor: the last subscriber id of the previous page. */
  after?: string;
  limit?: number;
}

export interface DirectoryRow {
  id: string;
  email: string;
  name: string | null;
  status: string;
  createdAt: Date;
  subscriptions: { slug: string; name: string; status: SubscriptionStatus }[];
}

export interface SubscriberDetail {
  id: string;
  email: string;
  name: string | null;
  timezone: string | null;
  status: string;
  createdAt: Date;
  updatedAt: Date;
  suppression: string | null;
  subscriptions: {
    slug: string;
    name: string;
    status: SubscriptionStatus;
    topics: string[];
    source: string | null;
    createdAt: Date;
    confirmedAt: Date | null;
    unsubscribedAt: Date | null;
  }[];
  consent: {
    action: string;
    newsletter: string | null;
    ip: string | null;
    userAgent: string | null;
    sourceUrl: string | null;
    consentText: string | null;
    createdAt: Date;
  }[];
  mail: {
    kind: string;
    newsletter: string | null;
    status: string;
    detail: string | null;
    messageId: string | null;
    createdAt: Date;
  }[];
  deliveries: { digestId: string; newsletter: string; status: string; finishedAt: Date | null }[];
}

/** "%" and "_" typed into the search box are letters, not wildcards. */
function likePrefix(q: string): string {
  return `${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The console's view of the audience: search, a subscriber's whole record, actions by id. */
@Injectable()
export class SubscriberDirectoryService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly admin: SubscriberAdminService,
    private readonly suppressions: SuppressionsService,
  ) {}

  async search(query: DirectoryQuery): Promise<{ items: DirectoryRow[]; next: string | null }> {
    const status = query.status || undefined;
    if (status && ![...SUBSCRIPTION_STATUSES, ...SUBSCRIBER_STATUSES].includes(status as DirectoryStatus)) {
      throw new BadRequestException([
        `status must be one of ${[...SUBSCRIPTION_STATUSES, ...SUBSCRIBER_STATUSES].join(', ')}`,
      ]);
    }
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 200);
    const params: unknown[] = [];
    const p = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    const where: string[] = [];
    const q = (query.q ?? '').trim().toLowerCase().slice(0, 254);
    if (q) where.push(`sub.email LIKE ${p(likePrefix(q))} ESCAPE '\\'`);
    if (query.after && /^[1-9][0-9]{0,18}$/.test(query.after)) where.push(`sub.id > ${p(query.after)}`);
    if (status && (SUBSCRIBER_STATUSES as readonly string[]).includes(status)) where.push(`sub.status = ${p(status)}`);
    const subFilter: string[] = [];
    if (query.newsletter) subFilter.push(`n.slug = ${p(query.newsletter)}`);
    if (status && (SUBSCRIPTION_STATUSES as readonly string[]).includes(status))
      subFilter.push(`s.status = ${p(status)}`);
    if (subFilter.length > 0) {
      where.push(
        `EXISTS (SELECT 1 FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id
                  WHERE s.subscriber_id = sub.id AND ${subFilter.join(' AND ')})`,
      );
    }
    const found = await rows<{
      id: string;
      email: string;
      name: string | null;
      status: string;
      created_at: Date;
      subscriptions: { slug: string; name: string; status: SubscriptionStatus }[];
    }>(
      this.ds,
      `SELECT sub.id, sub.email, sub.name, sub.status, sub.created_at,
              COALESCE((SELECT json_agg(json_build_object('slug', n.slug, 'name', n.name, 'status', s.status) ORDER BY n.name)
                          FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id
                         WHERE s.subscriber_id = sub.id), '[]') AS subscriptions
         FROM subscribers sub ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY sub.id LIMIT ${p(limit + 1)}`,
      params,
    );
    const page = found.slice(0, limit);
    return {
      items: page.map((r) => ({
        id: r.id,
        email: r.email,
        name: r.name,
        status: r.status,
        createdAt: r.created_at,
        subscriptions: r.subscriptions,
      })),
      next: found.length > limit ? page[page.length - 1].id : null,
    };
  }

  /** Everything the console shows about one subscriber, or null. */
  async detail(id: string): Promise<SubscriberDetail | null> {
    if (!/^[1-9][0-9]{0,18}$/.test(id)) return null;
    const [s] = await rows<{
      id: string;
      email: string;
      name: string | null;
      timezone: string | null;
      status: string;
      created_at: Date;
      updated_at: Date;
    }>(this.ds, `SELECT id, email, name, timezone, status, created_at, updated_at FROM subscribers WHERE id = $1`, [
      id,
    ]);
    if (!s) return null;
    const subscriptions = await rows<SubscriberDetail['subscriptions'][number]>(
      this.ds,
      `SELECT n.slug, n.name, s.status, s.topics, s.source, s.created_at AS "createdAt",
              s.confirmed_at AS "confirmedAt", s.unsubscribed_at AS "unsubscribedAt"
         FROM subscriptions s JOIN newsletters n ON n.id = s.newsletter_id
        WHERE s.subscriber_id = $1 ORDER BY n.name`,
      [id],
    );
    const consent = await rows<SubscriberDetail['consent'][number]>(
      this.ds,
      `SELECT c.action, n.name AS newsletter, host(c.ip) AS ip, c.user_agent AS "userAgent",
              c.source_url AS "sourceUrl", c.consent_text AS "consentText", c.created_at AS "createdAt"
         FROM consent_records c LEFT JOIN newsletters n ON n.id = c.newsletter_id
        WHERE c.subscriber_id = $1 ORDER BY c.created_at DESC, c.id DESC LIMIT 200`,
      [id],
    );
    const mail = await rows<SubscriberDetail['mail'][number]>(
      this.ds,
      `SELECT m.kind, n.name AS newsletter, m.status, m.detail, m.message_id AS "messageId", m.created_at AS "createdAt"
         FROM mail_log m LEFT JOIN newsletters n ON n.id = m.newsletter_id
        WHERE m.subscriber_id = $1 ORDER BY m.created_at DESC, m.id DESC LIMIT 100`,
      [id],
    );
    const deliveries = await rows<SubscriberDetail['deliveries'][number]>(
      this.ds,
      `SELECT d.digest_id AS "digestId", n.name AS newsletter, d.status, d.finished_at AS "finishedAt"
         FROM deliveries d JOIN digests g ON g.id = d.digest_id JOIN newsletters n ON n.id = g.newsletter_id
        WHERE d.subscriber_id = $1 ORDER BY d.digest_id DESC LIMIT 50`,
      [id],
    );
    return {
      id: s.id,
      email: s.email,
      name: s.name,
      timezone: s.timezone,
      status: s.status,
      createdAt: s.created_at,
      updatedAt: s.updated_at,
      suppression: await this.suppressions.reasonFor(this.ds, s.email),
      subscriptions,
      consent,
      mail,
      deliveries,
    };
  }

  private async emailOf(id: string): Promise<string> {
    const r = /^[1-9][0-9]{0,18}$/.test(id)
      ? await rows<{ email: string }>(this.ds, `SELECT email FROM subscribers WHERE id = $1`, [id])
      : [];
    if (r.length === 0) throw new NotFoundException('There is no such subscriber.');
    return r[0].email;
  }

  /** Unsubscribes from one newsletter on the reader's request (a consent record names who did it). */
  async unsubscribe(id: string, newsletter: string, by: string): Promise<void> {
    await this.admin.patch(await this.emailOf(id), { newsletters: { [newsletter]: 'unsubscribed' } }, by);
  }

  /** Everything stored about the subscriber (GDPR access). */
  async export(id: string): Promise<{ email: string; data: Record<string, unknown> }> {
    const email = await this.emailOf(id);
    return { email, data: await this.admin.export(email) };
  }

  /** Erasure, only when `typed` is the subscriber's address (the confirmation step). */
  async erase(id: string, typed: string): Promise<'erased' | 'mismatch'> {
    const email = await this.emailOf(id);
    if (typed.trim().toLowerCase() !== email) return 'mismatch';
    await this.admin.erase(email);
    return 'erased';
  }
}
