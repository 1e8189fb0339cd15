import { BadRequestException, Inject, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { OutboxRepository } from '#queue/outbox.repository.js';
import { normalizeEmail } from './email.js';
import { GuidesRepository } from './guides.repository.js';
import { NewslettersRepository } from './newsletters.repository.js';
import { type CatalogEntry, NewsletterCatalog } from './newsletter-catalog.service.js';
import { SignupWriter } from './signup-writer.repository.js';
import { SubscribersRepository } from './subscribers.repository.js';
import { type ConsentContext, SubscriptionsRepository } from './subscriptions.repository.js';
import { SuppressionsRepository } from './suppressions.repository.js';
import { emailHash, hashToken, signToken, verifyToken } from './tokens.js';

/** The words of the signup box, stored with every consent record (with their version). */
export const CONSENT_TEXT =
  'Subscribe to our weekly newsletter and get our FREE Guide: Natural Back Pain Relief: 16 Choices for Lasting Comfort. We respect your privacy. Unsubscribe at any time.';
export const CONSENT_VERSION = '2026-11-25';

export interface SubscribeInput {
  email: string;
  newsletters?: string[];
  name?: string;
  topics?: string[];
  timezone?: string;
  source?: string;
  /** Honeypot: a field people never see. Anything in it means a bot. */
  website?: string;
}

export interface GuideLink {
  title: string;
  url: string;
}

export class LinkError extends Error {
  constructor(
    public readonly kind: 'unknown' | 'expired' | 'used',
    message: string,
  ) {
    super(message);
  }
}

@Injectable()
export class SubscriptionsService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: SubscriptionsRepository,
    private readonly subscribers: SubscribersRepository,
    private readonly newsletters: NewslettersRepository,
    private readonly guides: GuidesRepository,
    private readonly suppressions: SuppressionsRepository,
    private readonly outbox: OutboxRepository,
    private readonly catalog: NewsletterCatalog,
    private readonly signups: SignupWriter,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** The newsletters asked for (default: the default newsletter); 400 naming any that does not exist. */
  async resolveNewsletters(slugs: string[] | undefined): Promise<CatalogEntry[]> {
    if (!slugs || slugs.length === 0) {
      const def = await this.catalog.defaultNewsletter();
      if (!def) throw new BadRequestException(['newsletters must name at least one newsletter (there is no default)']);
      return [def];
    }
    const { found, missing } = await this.catalog.bySlugs(slugs);
    if (missing.length > 0) {
      throw new BadRequestException([
        `newsletters contains an unknown newsletter: ${missing.map((m) => `"${m}"`).join(', ')}`,
      ]);
    }
    return found;
  }

  /**
   * Records a subscription request. The caller answers 202 whatever happens here, so the
   * response never tells whether the address was known: what it returns (the names of the
   * newsletters asked for, for the page's header) depends on the input only.
   */
  async subscribe(input: SubscribeInput, ctx: ConsentContext): Promise<{ newsletters: string[] }> {
    const check = normalizeEmail(input.email);
    if (!check.ok) throw new BadRequestException([check.reason]);
    const newsletters = await this.resolveNewsletters(input.newsletters);
    const answer = { newsletters: newsletters.map((n) => n.name) };
    if (input.website) return answer; // honeypot: same answer, nothing stored, nothing sent
    const email = check.email;
    // Bounced, complained or blocked addresses get the same answer in the same time (the database
    // does the same work and undoes it) and nothing else. An erased address may start a new
    // double opt-in: its hash is lifted only when that is confirmed.
    // The hottest write path: one statement and one round trip, shared with the sign-ups that
    // arrive at the same time (SignupWriter); the answer waits for the commit.
    await this.signups.write({
      email,
      name: input.name?.trim() || null,
      timezone: input.timezone ?? null,
      suppressionHash: emailHash(this.config.appSecret, email),
      newsletterIds: newsletters.map((n) => n.id),
      topics: [...new Set((input.topics ?? []).map((t) => t.trim()).filter((t) => t.length > 0))],
      source: input.source ?? null,
      consent: { ...ctx, consentText: CONSENT_TEXT, consentVersion: CONSENT_VERSION },
      confirmationsPerDay: this.config.abuse.confirmationsPerDay,
    });
    return answer;
  }

  /** Checks a confirmation token without using it (the GET page). */
  async peekConfirm(rawToken: string): Promise<{ newsletters: string[] }> {
    return this.ds.transaction(async (em) => {
      const token = await this.repo.lockConfirmToken(em, hashToken(rawToken));
      this.assertUsable(token);
      const newsletters = await this.newsletters.names(em, token.newsletterIds);
      if (token.usedAt && (await this.repo.countActive(em, token.subscriberId, token.newsletterIds)) === 0) {
        throw new LinkError('used', 'This confirmation link has already been used.');
      }
      return { newsletters };
    });
  }

  private assertUsable(
    token: { expiresAt: Date; usedAt: Date | null } | null,
  ): asserts token is { expiresAt: Date; usedAt: Date | null } {
    if (!token) throw new LinkError('unknown', 'This confirmation link is not valid.');
    if (!token.usedAt && token.expiresAt.getTime() < Date.now()) {
      throw new LinkError('expired', 'This confirmation link has expired.');
    }
  }

  /** Confirms: idempotent for the same token while its subscriptions stay active. */
  async confirm(
    rawToken: string,
    ctx: ConsentContext,
  ): Promise<{ status: 'active'; newsletters: string[]; guides: { title: string; url: string }[] }> {
    return this.ds.transaction(async (em) => {
      const token = await this.repo.lockConfirmToken(em, hashToken(rawToken));
      this.assertUsable(token);
      const newsletters = await this.newsletters.names(em, token.newsletterIds);
      const result = { status: 'active' as const, newsletters, guides: [] as GuideLink[] };
      if (token.usedAt) {
        if ((await this.repo.countActive(em, token.subscriberId, token.newsletterIds)) > 0) {
          result.guides = await this.guideLinks(em, token.subscriberId, token.newsletterIds);
          return result;
        }
        throw new LinkError('used', 'This confirmation link has already been used.');
      }
      const activated = await this.repo.activate(em, token.subscriberId, token.newsletterIds);
      if (activated.length > 0) await this.liftErasure(em, token.subscriberId);
      await this.repo.markTokenUsed(em, token.id);
      await this.repo.recordConsent(
        em,
        token.subscriberId,
        activated.map((a) => a.newsletterId),
        'confirm',
        { ...ctx, consentText: CONSENT_TEXT, consentVersion: CONSENT_VERSION },
      );
      for (const a of activated.filter((x) => x.needsGuide)) {
        await this.outbox.add(em, { type: 'subscription.confirmed', payload: { subscriptionId: a.id } });
      }
      result.guides = await this.guideLinks(em, token.subscriberId, token.newsletterIds);
      return result;
    });
  }

  /** A confirmed new double opt-in lifts the hash an erasure left behind (and nothing else). */
  private async liftErasure(em: EntityManager, subscriberId: string): Promise<void> {
    const email = await this.subscribers.emailById(em, subscriberId);
    if (email) await this.suppressions.liftErasure(em, emailHash(this.config.appSecret, email));
  }

  /** Download links (signed, expiring, as in the guide mail) for the guides of these active subscriptions. */
  private async guideLinks(em: EntityManager, subscriberId: string, newsletterIds: number[]): Promise<GuideLink[]> {
    const guides = await this.guides.ofActiveSubscriptions(em, subscriberId, newsletterIds);
    const expires = new Date(Date.now() + this.config.tokens.guideTtlDays * 86_400_000);
    return guides.map((g) => ({
      title: g.title,
      url: `${this.config.publicUrl}/guides/${g.slug}/${signToken(this.config.appSecret, 'guide', g.subscriptionId, expires)}`,
    }));
  }

  private subscriptionFromToken(token: string): string {
    const v = verifyToken(this.config.appSecret, 'unsubscribe', token);
    if (!v.ok) throw new LinkError('unknown', 'This unsubscribe link is not valid.');
    return v.id;
  }

  async preferences(token: string) {
    const id = this.subscriptionFromToken(token);
    const prefs = await this.repo.preferences(this.ds.manager, id);
    if (!prefs) throw new LinkError('unknown', 'This unsubscribe link is not valid.');
    return prefs;
  }

  async unsubscribe(token: string, scope: 'one' | 'all', ctx: ConsentContext): Promise<{ newsletters: string[] }> {
    const id = this.subscriptionFromToken(token);
    return this.ds.transaction(async (em) => {
      const res = await this.repo.unsubscribe(em, id, scope);
      if (!res) throw new LinkError('unknown', 'This unsubscribe link is not valid.');
      await this.repo.recordConsent(em, res.subscriberId, res.newsletterIds, 'unsubscribe', ctx);
      const newsletters = await this.repo.newsletterNames(
        em,
        scope === 'one' ? { subscriptionId: id } : { subscriberId: res.subscriberId },
      );
      return { newsletters };
    });
  }

  async updateTopics(token: string, topics: string[], ctx: ConsentContext): Promise<void> {
    const id = this.subscriptionFromToken(token);
    await this.ds.transaction(async (em) => {
      const prefs = await this.repo.preferences(em, id);
      if (!prefs) throw new LinkError('unknown', 'This unsubscribe link is not valid.');
      await this.repo.setTopics(em, id, [...new Set(topics.map((t) => t.trim()).filter(Boolean))].slice(0, 50));
      const owner = await this.repo.ownerOf(em, id);
      if (owner === null) throw new LinkError('unknown', 'This unsubscribe link is not valid.');
      await this.repo.recordConsent(em, owner, [prefs.newsletter.id], 'preferences', ctx);
    });
  }

  /** What the hosted signup box shows: every newsletter, the chosen one ticked, and its guide. */
  async signupBox(slug: string | undefined, source: string | undefined) {
    const rows = await this.newsletters.signupChoices(this.ds);
    const chosen = rows.find((r) => r.slug === slug) ?? rows.find((r) => r.is_default) ?? rows[0];
    let safeSource = '';
    if (source && source.length <= 2048) {
      try {
        const u = new URL(source);
        if (u.protocol === 'http:' || u.protocol === 'https:') safeSource = u.toString();
      } catch {
        safeSource = '';
      }
    }
    return {
      newsletters: rows.map((r) => ({ slug: r.slug, name: r.name, checked: r === chosen })),
      brand: chosen?.name,
      description: chosen?.description ?? null,
      // Only the chosen newsletter's own guide: offering another's would promise what it never sends.
      guideTitle: chosen?.guide_title ?? null,
      source: safeSource,
    };
  }

  static notFound(): NotFoundException {
    return new NotFoundException('Not found');
  }
}
