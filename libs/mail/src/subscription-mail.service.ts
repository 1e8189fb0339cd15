import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { UnrecoverableError } from 'bullmq';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { emailHash, newRandomToken, signToken } from '#subscriptions/tokens.js';
import { MailRenderer, headerValue } from './mail-renderer.service.js';
import { MailTransport, classifySmtpError, isHardBounce } from './mail-transport.service.js';
import { SendRateLimiter } from './send-rate-limiter.service.js';
import { rows } from '#db/sql.js';

export type JobOutcome = 'sent' | 'skipped';

/**
 * RFC 2369 + RFC 8058: the one-click https URL alone. No mailto: nothing reads that mailbox and it
 * carries no token, so a client that used it would unsubscribe nobody. The URL is checked for CR/LF.
 */
export function listUnsubscribeValue(url: string): string {
  return headerValue(`<${url}>`);
}

/** List-Unsubscribe and List-Unsubscribe-Post, prepared as they are (the URL is URL-safe). */
export function listUnsubscribeHeaders(url: string): Record<string, { prepared: true; value: string }> {
  return {
    'List-Unsubscribe': { prepared: true, value: listUnsubscribeValue(url) },
    'List-Unsubscribe-Post': { prepared: true, value: 'List-Unsubscribe=One-Click' },
  };
}

interface NewsletterRow {
  id: number;
  slug: string;
  name: string;
  from_name: string | null;
  from_email: string | null;
  guide_title: string | null;
  guide_slug: string | null;
}

/** Sends the subscription lifecycle mails: the confirmation and the lead-magnet guide. */
@Injectable()
export class SubscriptionMailService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly renderer: MailRenderer,
    private readonly transport: MailTransport,
    private readonly limiter: SendRateLimiter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private from(n: NewsletterRow): { name: string; address: string } | string {
    if (n.from_email) return { name: headerValue(n.from_name ?? n.name), address: n.from_email };
    if (this.config.mailFrom) return this.config.mailFrom;
    return { name: headerValue(n.name), address: `newsletter@${new URL(this.config.publicUrl).hostname}` };
  }

  private async loadNewsletters(ids: number[]): Promise<NewsletterRow[]> {
    return this.ds.query(
      `SELECT n.id, n.slug, n.name, n.from_name, n.from_email, g.title AS guide_title, g.slug AS guide_slug
       FROM newsletters n LEFT JOIN guides g ON g.id = n.guide_id WHERE n.id = ANY($1::int[]) ORDER BY n.name`,
      [ids],
    );
  }

  /** The subscriber, unless bounced, complained or suppressed (an erased address may confirm anew). */
  private async subscriberIfMailable(
    id: string,
    allowErased = false,
  ): Promise<{ id: string; email: string; name: string | null } | null> {
    const rows: { id: string; email: string; name: string | null; status: string }[] = await this.ds.query(
      `SELECT id, email, name, status FROM subscribers WHERE id = $1`,
      [id],
    );
    const s = rows[0];
    if (!s || s.status !== 'ok') return null;
    const sup: { reason: string }[] = await this.ds.query(`SELECT reason FROM suppressions WHERE email_hash = $1`, [
      emailHash(this.config.appSecret, s.email),
    ]);
    if (sup.length === 0 || (allowErased && sup[0].reason === 'erased')) return s;
    return null;
  }

  private async log(
    subscriberId: string,
    newsletterId: number | null,
    kind: string,
    status: 'sent' | 'failed' | 'skipped',
    messageId: string | null,
    detail: string | null,
  ): Promise<void> {
    await this.ds.query(
      `INSERT INTO mail_log (subscriber_id, newsletter_id, kind, message_id, status, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
      [subscriberId, newsletterId, kind, messageId, status, detail],
    );
  }

  /** Hard bounce: the address is suppressed for every newsletter and never mailed again. */
  async suppress(subscriberId: string, email: string, reason: 'bounced' | 'complained', detail: string): Promise<void> {
    await this.ds.transaction(async (em) => {
      await em.query(
        `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, $2, $3) ON CONFLICT (email_hash) DO NOTHING`,
        [emailHash(this.config.appSecret, email), reason, detail.slice(0, 500)],
      );
      await em.query(`UPDATE subscribers SET status = $2, updated_at = now() WHERE id = $1`, [subscriberId, reason]);
    });
  }

  /** Turns an SMTP failure into the job's outcome: retry (throw) or give up (UnrecoverableError). */
  private async fail(
    err: unknown,
    subscriber: { id: string; email: string },
    newsletterId: number | null,
    kind: string,
  ): Promise<never> {
    const detail = err instanceof Error ? err.message : String(err);
    if (classifySmtpError(err) === 'permanent') {
      await this.log(subscriber.id, newsletterId, kind, 'failed', null, detail.slice(0, 500));
      if (isHardBounce(err)) await this.suppress(subscriber.id, subscriber.email, 'bounced', detail);
      throw new UnrecoverableError(`SMTP rejected the ${kind} mail permanently: ${detail}`);
    }
    throw err instanceof Error ? err : new Error(detail);
  }

  async sendConfirmation(subscriberId: string, newsletterIds: number[]): Promise<JobOutcome> {
    const subscriber = await this.subscriberIfMailable(subscriberId, true);
    if (!subscriber) return 'skipped';
    const pending: { newsletter_id: number; source: string | null }[] = await this.ds.query(
      `SELECT newsletter_id, source FROM subscriptions WHERE subscriber_id = $1 AND newsletter_id = ANY($2::int[]) AND status = 'pending'`,
      [subscriberId, newsletterIds],
    );
    if (pending.length === 0) return 'skipped';
    const newsletters = await this.loadNewsletters(pending.map((p) => p.newsletter_id));
    const token = newRandomToken();
    const ttlHours = this.config.tokens.confirmTtlHours;
    await this.ds.query(
      `INSERT INTO tokens (token_hash, purpose, subscriber_id, newsletter_ids, expires_at)
       VALUES ($1, 'confirm', $2, $3::int[], now() + make_interval(hours => $4))`,
      [token.hash, subscriberId, newsletters.map((n) => n.id), ttlHours],
    );
    const first = newsletters[0];
    const guide = newsletters.find((n) => n.guide_title);
    const names = newsletters.map((n) => n.name).join(' and ');
    const mail = this.renderer.render('confirmation', {
      newsletterName: names,
      newsletterNames: names,
      tagline: 'One step left',
      preview: 'Confirm your email address to start receiving the newsletter.',
      name: subscriber.name,
      confirmUrl: `${this.config.publicUrl}/confirm/${token.raw}`,
      confirmDays: Math.round(ttlHours / 24),
      guideTitle: guide?.guide_title ?? null,
      footerReason: `You are receiving this one-time message because someone asked to subscribe ${subscriber.email} to ${names}${
        pending[0].source ? ` at ${pending[0].source}` : ''
      }.`,
      postalAddress: this.config.postalAddress,
      privacyUrl: this.config.privacyUrl ?? null,
    });
    await this.limiter.acquire(1);
    try {
      const { messageId } = await this.transport.send({
        from: this.from(first),
        to: { name: headerValue(subscriber.name ?? ''), address: subscriber.email },
        subject: mail.subject,
        html: mail.html,
        text: mail.text,
        headers: { 'Auto-Submitted': 'auto-generated' },
      });
      await this.log(subscriberId, first.id, 'confirmation', 'sent', messageId, null);
      return 'sent';
    } catch (err) {
      return this.fail(err, subscriber, first.id, 'confirmation');
    }
  }

  async sendGuide(subscriptionId: string): Promise<JobOutcome> {
    const found: { subscriber_id: string; newsletter_id: number }[] = await this.ds.query(
      `SELECT subscriber_id, newsletter_id FROM subscriptions WHERE id = $1`,
      [subscriptionId],
    );
    if (found.length === 0) return 'skipped';
    const subscriber = await this.subscriberIfMailable(found[0].subscriber_id);
    if (!subscriber) return 'skipped';
    const [newsletter] = await this.loadNewsletters([found[0].newsletter_id]);
    if (!newsletter?.guide_slug) return 'skipped';
    // Claim: the guide goes out at most once per subscription, whatever re-subscribes or retries do.
    const claimed = await rows(
      this.ds,
      `UPDATE subscriptions SET guide_sent_at = now() WHERE id = $1 AND status = 'active' AND guide_sent_at IS NULL RETURNING id`,
      [subscriptionId],
    );
    if (claimed.length === 0) return 'skipped';
    const guideDays = this.config.tokens.guideTtlDays;
    const guideToken = signToken(
      this.config.appSecret,
      'guide',
      subscriptionId,
      new Date(Date.now() + guideDays * 86_400_000),
    );
    const unsubToken = signToken(this.config.appSecret, 'unsubscribe', subscriptionId);
    const unsubscribeUrl = `${this.config.publicUrl}/unsubscribe/${unsubToken}`;
    const mail = this.renderer.render('guide', {
      newsletterName: newsletter.name,
      tagline: 'Your weekly guide to a healthier back and joints',
      preview: `Here is your copy of ${newsletter.guide_title}.`,
      name: subscriber.name,
      guideTitle: newsletter.guide_title,
      guideUrl: `${this.config.publicUrl}/guides/${newsletter.guide_slug}/${guideToken}`,
      guideDays,
      unsubscribeUrl,
      preferencesUrl: unsubscribeUrl,
      footerReason: `You are receiving this because you subscribed ${subscriber.email} to ${newsletter.name} and confirmed it.`,
      postalAddress: this.config.postalAddress,
      privacyUrl: this.config.privacyUrl ?? null,
    });
    await this.limiter.acquire(1);
    try {
      const { messageId } = await this.transport.send({
        from: this.from(newsletter),
        to: { name: headerValue(subscriber.name ?? ''), address: subscriber.email },
        subject: mail.subject,
        html: mail.html,
        text: mail.text,
        list: {
          id: {
            url: `${newsletter.slug}.${new URL(this.config.publicUrl).hostname}`,
            comment: headerValue(newsletter.name),
          },
        },
        headers: listUnsubscribeHeaders(unsubscribeUrl),
      });
      await this.log(subscriber.id, newsletter.id, 'guide', 'sent', messageId, null);
      return 'sent';
    } catch (err) {
      await this.ds.query(`UPDATE subscriptions SET guide_sent_at = NULL WHERE id = $1`, [subscriptionId]);
      return this.fail(err, subscriber, newsletter.id, 'guide');
    }
  }
}
