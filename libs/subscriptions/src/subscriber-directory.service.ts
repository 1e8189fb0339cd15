import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { SubscriberAdminService } from './subscriber-admin.service.js';
import {
  type RecordConsent,
  type RecordDelivery,
  type RecordMail,
  type RecordSubscription,
  SubscriberRecordsRepository,
} from './subscriber-records.repository.js';
import { SubscribersRepository } from './subscribers.repository.js';
import { SuppressionsService } from './suppressions.service.js';

export interface SubscriberDetail {
  id: string;
  email: string;
  name: string | null;
  timezone: string | null;
  status: string;
  createdAt: Date;
  updatedAt: Date;
  suppression: string | null;
  subscriptions: RecordSubscription[];
  consent: RecordConsent[];
  mail: RecordMail[];
  deliveries: RecordDelivery[];
}

/** The console's view of one subscriber: the whole record, and actions by id. */
@Injectable()
export class SubscriberDirectoryService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly subscribers: SubscribersRepository,
    private readonly records: SubscriberRecordsRepository,
    private readonly admin: SubscriberAdminService,
    private readonly suppressions: SuppressionsService,
  ) {}

  /** Everything the console shows about one subscriber, or null. */
  async detail(id: string): Promise<SubscriberDetail | null> {
    if (!/^[1-9][0-9]{0,18}$/.test(id)) return null;
    const s = await this.subscribers.byId(this.ds, id);
    if (!s) return null;
    const subscriptions = await this.records.subscriptions(this.ds, id);
    const consent = await this.records.recentConsent(this.ds, id);
    const mail = await this.records.recentMail(this.ds, id);
    const deliveries = await this.records.recentDeliveries(this.ds, id);
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
    const email = /^[1-9][0-9]{0,18}$/.test(id) ? await this.subscribers.emailById(this.ds, id) : null;
    if (email === null) throw new NotFoundException('There is no such subscriber.');
    return email;
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
