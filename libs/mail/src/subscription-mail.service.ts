import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { UnrecoverableError } from 'bullmq';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { SuppressionsRepository } from '#subscriptions/suppressions.repository.js';
import { emailHash, newRandomToken, signToken } from '#subscriptions/tokens.js';
import { type BounceRef, returnPathFor } from './bounces/bounce-token.js';
import { listUnsubscribeHeaders } from './list-headers.js';
import { MailRenderer, headerValue } from './mail-renderer.service.js';
import { MailRepository } from './mail.repository.js';
import { MailTransport } from './mail-transport.service.js';
import { RouteRateLimiters } from './route-rate-limiters.service.js';
import { SendRateLimiter } from './send-rate-limiter.service.js';
import { senderOf } from './sender-address.js';
import { classifySmtpError, isHardBounce } from './smtp-errors.js';

export type JobOutcome = 'sent' | 'skipped';

/** Sends the subscription lifecycle mails: the confirmation and the lead-magnet guide. */
@Injectable()
export class SubscriptionMailService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: MailRepository,
    private readonly suppressions: SuppressionsRepository,
    private readonly renderer: MailRenderer,
    private readonly transport: MailTransport,
    private readonly limiter: SendRateLimiter,
    private readonly routeLimiters: RouteRateLimiters,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** A send permit of the route's own rate (when it has one), then a global one. */
  private async permit(route: string | null): Promise<void> {
    await this.routeLimiters.of(route)?.acquire(1);
    await this.limiter.acquire(1);
  }

  /** The subscriber, unless bounced, complained or suppressed (an erased address may confirm anew). */
  private async subscriberIfMailable(
    id: string,
    allowErased = false,
  ): Promise<{ id: string; email: string; name: string | null } | null> {
    const s = await this.repo.subscriber(this.ds, id);
    if (!s || s.status !== 'ok') return null;
    const hash = emailHash(this.config.appSecret, s.email);
    return (await this.suppressions.isSuppressed(this.ds, hash, allowErased ? 'opt-in' : 'mail')) ? null : s;
  }

  private async log(
    subscriberId: string,
    newsletterId: number | null,
    kind: string,
    status: 'sent' | 'failed' | 'skipped',
    messageId: string | null,
    detail: string | null,
  ): Promise<void> {
    await this.repo.log(this.ds, { subscriberId, newsletterId, kind, status, messageId, detail });
  }

  /** The SMTP envelope of a lifecycle mail when BOUNCE_DOMAIN is set (VERP), else nodemailer's own (the From address). */
  private envelope(ref: BounceRef, to: string): { envelope?: { from: string; to: string[] } } {
    const from = returnPathFor(this.config, ref);
    return from ? { envelope: { from, to: [to] } } : {};
  }

  /** Hard bounce: the address is suppressed for every newsletter and never mailed again. */
  async suppress(subscriberId: string, email: string, reason: 'bounced' | 'complained', detail: string): Promise<void> {
    const hash = emailHash(this.config.appSecret, email);
    await this.ds.transaction(async (em) => {
      await this.suppressions.recordBounce(em, hash, reason, detail.slice(0, 500));
      await this.repo.markSubscriber(em, subscriberId, reason);
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
    const pending = await this.repo.pendingSubscriptions(this.ds, subscriberId, newsletterIds);
    if (pending.length === 0) return 'skipped';
    const newsletters = await this.repo.newsletters(
      this.ds,
      pending.map((p) => p.newsletter_id),
    );
    const token = newRandomToken();
    const ttlHours = this.config.tokens.confirmTtlHours;
    await this.repo.insertConfirmToken(
      this.ds,
      token.hash,
      subscriberId,
      newsletters.map((n) => n.id),
      ttlHours,
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
    // The confirmation covers every newsletter asked for at once: it leaves through the first one's route.
    await this.permit(first.smtp_route);
    try {
      const { messageId } = await this.transport.send(
        {
          from: senderOf(first, this.config),
          to: { name: headerValue(subscriber.name ?? ''), address: subscriber.email },
          ...this.envelope({ kind: 'confirmation', subscriberId }, subscriber.email),
          subject: mail.subject,
          html: mail.html,
          text: mail.text,
          headers: { 'Auto-Submitted': 'auto-generated' },
        },
        first.smtp_route,
      );
      await this.log(subscriberId, first.id, 'confirmation', 'sent', messageId, null);
      return 'sent';
    } catch (err) {
      return this.fail(err, subscriber, first.id, 'confirmation');
    }
  }

  async sendGuide(subscriptionId: string): Promise<JobOutcome> {
    const found = await this.repo.subscription(this.ds, subscriptionId);
    if (!found) return 'skipped';
    const subscriber = await this.subscriberIfMailable(found.subscriber_id);
    if (!subscriber) return 'skipped';
    const [newsletter] = await this.repo.newsletters(this.ds, [found.newsletter_id]);
    if (!newsletter?.guide_slug) return 'skipped';
    // Claim: the guide goes out at most once per subscription, whatever re-subscribes or retries do.
    if (!(await this.repo.claimGuide(this.ds, subscriptionId))) return 'skipped';
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
    await this.permit(newsletter.smtp_route);
    try {
      const { messageId } = await this.transport.send(
        {
          from: senderOf(newsletter, this.config),
          to: { name: headerValue(subscriber.name ?? ''), address: subscriber.email },
          ...this.envelope({ kind: 'guide', subscriberId: subscriber.id }, subscriber.email),
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
        },
        newsletter.smtp_route,
      );
      await this.log(subscriber.id, newsletter.id, 'guide', 'sent', messageId, null);
      return 'sent';
    } catch (err) {
      await this.repo.releaseGuide(this.ds, subscriptionId);
      return this.fail(err, subscriber, newsletter.id, 'guide');
    }
  }
}
