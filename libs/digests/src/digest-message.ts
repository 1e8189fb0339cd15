import type { SendMailOptions } from 'nodemailer';
import type { AppConfig } from '#config/config.js';
import { type BuiltMessage, BulkMessageTemplate, type MessageBuffer, type Sender } from '#mail/bulk-message.js';
import { listIdValue, listUnsubscribeHeaders, listUnsubscribeValue } from '#mail/list-headers.js';
import { headerValue } from '#mail/mail-renderer.service.js';
import { senderAddress, senderOf } from '#mail/sender-address.js';
import { signToken } from '#subscriptions/tokens.js';
import type { DigestRenderer, IssueTemplates, PersonalVars } from './digest-renderer.service.js';
import type { DigestRow, Recipient } from './digests.repository.js';

/** The issue's templates as stored with the digest. */
export function issueOf(d: DigestRow): IssueTemplates {
  return { subject: d.subject ?? '', html: d.html_template ?? '', text: d.text_template ?? '' };
}

/** The List-ID of a newsletter's mail: its name, and its slug under the public host. */
export function digestListId(d: DigestRow, publicHost: string): string {
  return listIdValue(d.newsletter_name, `${d.newsletter_slug}.${publicHost}`);
}

/**
 * One digest's message, composed per recipient from what every message of the issue shares
 * (From, List-ID, the compiled templates, the MIME parts), worked out once per batch.
 */
export class DigestMessage {
  /** The renderer's cache key for this issue's compiled templates. */
  private readonly key: string;
  private readonly issue: IssueTemplates;
  private readonly from: Sender;
  private readonly listId: string;
  /** The message's shared MIME parts, for `BulkMessageTemplate.build` per recipient. */
  private readonly template: BulkMessageTemplate;

  constructor(
    private readonly d: DigestRow,
    private readonly renderer: DigestRenderer,
    private readonly config: Pick<AppConfig, 'publicUrl' | 'appSecret' | 'mailFrom'>,
  ) {
    this.key = `digest:${d.id}`;
    this.issue = issueOf(d);
    this.from = senderOf({ name: d.newsletter_name, from_name: d.from_name, from_email: d.from_email }, config);
    this.listId = digestListId(d, new URL(config.publicUrl).hostname);
    this.template = new BulkMessageTemplate({
      from: this.from,
      fromAddress: senderAddress(this.from),
      subject: this.issue.subject,
      headers: { 'List-ID': this.listId, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
    });
  }

  /**
   * The recipient's message written into `buffer`, or null when it does not fit the spliced form
   * (then `options`).
   */
  build(r: Recipient, buffer: MessageBuffer): BuiltMessage | null {
    const unsubscribeUrl = this.unsubscribeUrl(r.subscriptionId);
    const spliced = this.renderer.personalizeSpliced(this.key, this.issue, this.vars(r, unsubscribeUrl));
    if (!spliced) return null;
    return this.template.build(
      {
        to: { name: headerValue(r.name ?? ''), address: r.email },
        headers: { 'List-Unsubscribe': listUnsubscribeValue(unsubscribeUrl) },
        text: spliced.text,
        html7bit: spliced.html,
      },
      buffer,
    );
  }

  /** The recipient's message as nodemailer options, for recipients the spliced form does not fit. */
  options(r: Recipient): Omit<SendMailOptions, 'list'> {
    const unsubscribeUrl = this.unsubscribeUrl(r.subscriptionId);
    const mail = this.renderer.personalizeForSending(this.key, this.issue, this.vars(r, unsubscribeUrl));
    return {
      from: this.from,
      to: { name: headerValue(r.name ?? ''), address: r.email },
      subject: mail.subject,
      html: mail.html,
      text: mail.text,
      // Headers and the text part, where they need encoding at all: base64 costs a fraction of quoted-printable.
      textEncoding: 'base64',
      headers: {
        'List-ID': { prepared: true, value: this.listId },
        ...listUnsubscribeHeaders(unsubscribeUrl),
      },
    };
  }

  private unsubscribeUrl(subscriptionId: string | null): string {
    const { publicUrl, appSecret } = this.config;
    return subscriptionId
      ? `${publicUrl}/unsubscribe/${signToken(appSecret, 'unsubscribe', subscriptionId)}`
      : `${publicUrl}/subscribe?newsletter=${encodeURIComponent(this.d.newsletter_slug)}`;
  }

  private vars(r: { email: string; name: string | null }, unsubscribeUrl: string): PersonalVars {
    return {
      greeting: r.name ? `Hi ${r.name},` : 'Hello,',
      email: r.email,
      unsubscribeUrl,
      preferencesUrl: unsubscribeUrl,
    };
  }
}
