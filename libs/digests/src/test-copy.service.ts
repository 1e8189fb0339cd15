import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { MailRepository } from '#mail/mail.repository.js';
import { MailTransport } from '#mail/mail-transport.service.js';
import { returnPathFor } from '#mail/bounces/bounce-token.js';
import { senderOf } from '#mail/sender-address.js';
import { clickKey, readerPart } from './click-tokens.js';
import { digestListId, issueLinks, issueOf } from './digest-message.js';
import { DigestRenderer, hasTestCopySlots, testCopyOf } from './digest-renderer.service.js';
import { voiceOf } from './digest-voice.js';
import { DigestsRepository } from './digests.repository.js';

/** Test copies of a digest: one to any address, outside the ledger, logged as a digest test. */
@Injectable()
export class TestCopySender {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: DigestsRepository,
    private readonly mailLog: MailRepository,
    private readonly renderer: DigestRenderer,
    private readonly transport: MailTransport,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** One test copy to `to`; `requestedBy` names the sender in its footer. */
  async send(
    digestId: string,
    to: string,
    requestedBy = 'a Mailroom user (console or admin API)',
  ): Promise<'sent' | 'skipped'> {
    const d = await this.repo.find(this.ds, digestId);
    if (!d) return 'skipped';
    // The issue as readers get it; rendered anew when not planned yet, or stored before test copies had their slots.
    let issue = d.html_template ? issueOf(d) : null;
    if (!issue || !hasTestCopySlots(issue.html)) {
      const articles = await this.repo.issueArticles(this.ds, d, this.config.digest.maxArticles);
      if (articles.length === 0) return 'skipped';
      issue = await this.renderer.renderIssue(
        d.newsletter_name,
        articles,
        d.send_at,
        voiceOf(d),
        null,
        'strict',
        issueLinks(d),
      );
    }
    // A test copy says so, and carries no unsubscribe (header or link): no subscription stands behind it.
    const copy = testCopyOf(issue, requestedBy);
    const key = `test:${d.id}:${Date.now()}`;
    const mail = this.renderer.personalizeForSending(key, copy, {
      greeting: 'Hello,',
      email: to,
      unsubscribeUrl: '',
      preferencesUrl: '',
      // Tracked links work in a test copy and count no click (reader 0).
      clickReader: readerPart(clickKey(this.config.appSecret), d.id, '0'),
    });
    // A bounce of a test copy names the digest and no reader: it is recorded, nobody is suppressed.
    const returnPath = returnPathFor(this.config, { kind: 'test', digestId: d.id });
    const { messageId } = await this.transport.sendBuilt(
      {
        from: senderOf({ name: d.newsletter_name, from_name: d.from_name, from_email: d.from_email }, this.config),
        to: { name: '', address: to },
        ...(returnPath ? { envelope: { from: returnPath, to: [to] } } : {}),
        subject: mail.subject,
        html: mail.html,
        text: mail.text,
        textEncoding: 'base64',
        headers: {
          'List-ID': { prepared: true, value: digestListId(d, new URL(this.config.publicUrl).hostname) },
        },
      },
      undefined,
      d.smtp_route,
    );
    await this.mailLog.log(this.ds, {
      subscriberId: null,
      newsletterId: d.newsletter_id,
      kind: 'digest-test',
      status: 'sent',
      messageId,
      detail: `test copy of digest ${d.id}`,
    });
    return 'sent';
  }
}
