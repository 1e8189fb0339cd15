import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { OutboxRepository } from '#queue/outbox.repository.js';
import { normalizeEmail } from './email.js';
import { NewslettersRepository } from './newsletters.repository.js';
import { SubscriberRecordsRepository } from './subscriber-records.repository.js';
import { SubscribersRepository } from './subscribers.repository.js';
import { SubscriptionsRepository } from './subscriptions.repository.js';
import { SuppressionsRepository } from './suppressions.repository.js';
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
    private readonly subscribers: SubscribersRepository,
    private readonly records: SubscriberRecordsRepository,
    private readonly newsletters: NewslettersRepository,
    private readonly suppressionList: SuppressionsRepository,
    private readonly outbox: OutboxRepository,
    private readonly suppressions: SuppressionsService,
  ) {}

  private email(raw: string): string {
    const check = normalizeEmail(raw);
    if (!check.ok) throw new BadRequestException([check.reason]);
    return check.email;
  }

  private async subscriberId(email: string): Promise<string> {
    const id = await this.subscribers.idByEmail(this.ds, email);
    if (id === null) throw new NotFoundException(`No subscriber with address ${email}`);
    return id;
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
        await this.subscribers.updateProfile(em, id, patch.name ?? null, patch.timezone ?? null);
      }
      if (patch.topics !== undefined) {
        await this.repo.setTopicsOfSubscriber(em, id, [...new Set(patch.topics)]);
      }
      if (changes.length > 0) {
        const slugs = changes.map(([slug]) => slug);
        const found = await this.newsletters.bySlugs(em, slugs);
        const missing = slugs.filter((s) => !found.some((f) => f.slug === s));
        if (missing.length)
          throw new BadRequestException([
            `newsletters contains an unknown newsletter: ${missing.map((m) => `"${m}"`).join(', ')}`,
          ]);
        const left = await this.repo.unsubscribeFrom(
          em,
          id,
          found.map((f) => f.id),
        );
        await this.repo.recordConsent(
          em,
          id,
          left,
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
    const { subscriber, subscriptions, consent, mail, digests, clicks, bounceReports } = await this.records.export(
      this.ds,
      id,
    );
    const suppressed = await this.suppressions.reasonFor(this.ds, email);
    return {
      subscriber,
      subscriptions,
      consentRecords: consent,
      mailLog: mail,
      digestDeliveries: digests,
      clicks,
      bounceReports,
      suppression: suppressed,
    };
  }

  /** Erasure: personal data removed; only a keyed hash stays on the suppression list. */
  async erase(rawEmail: string): Promise<void> {
    const email = this.email(rawEmail);
    const id = await this.subscriberId(email);
    await this.ds.transaction(async (em) => {
      await this.suppressionList.addErased(em, this.suppressions.hash(email));
      // Outbox events name the subscriber by id only; drop the ones still waiting.
      await this.outbox.dropPendingForSubscriber(em, id);
      await this.subscribers.delete(em, id);
    });
  }
}
