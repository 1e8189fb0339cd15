import type { SendMailOptions } from 'nodemailer';
import type { AppConfig } from '#config/config.js';
import {
  type BuiltMessage,
  BulkMessageTemplate,
  type DkimKeySource,
  type MessageBuffer,
  type Sender,
} from '#mail/bulk-message.js';
import { listIdValue, listUnsubscribeHeaders, listUnsubscribeValue } from '#mail/list-headers.js';
import { headerValue } from '#mail/mail-renderer.service.js';
import { senderAddress, senderOf } from '#mail/sender-address.js';
import { signToken } from '#subscriptions/tokens.js';
import { clickKey, readerPart } from './click-tokens.js';
import type { DigestRenderer, IssueLinks, IssueTemplates, PersonalVars } from './digest-renderer.service.js';
import type { DigestRow, Recipient, VariantTemplates } from './digests.repository.js';

/** The issue's templates as stored with the digest. */
export function issueOf(d: DigestRow): IssueTemplates {
  return { subject: d.subject ?? '', html: d.html_template ?? '', text: d.text_template ?? '' };
}

/**
 * The links of a digest's issue: tracked as the digest was planned (stored with variant 0), else
 * as its newsletter says now; the web version while the newsletter keeps an archive.
 */
export function issueLinks(d: DigestRow): IssueLinks {
  return {
    digestId: d.id,
    newsletterSlug: d.newsletter_slug,
    tracking: d.html_template ? d.tracking : d.newsletter_tracking,
    webVersion: d.newsletter_archive,
  };
}

/** The List-ID of a newsletter's mail: its name, and its slug under the public host. */
export function digestListId(d: DigestRow, publicHost: string): string {
  return listIdValue(d.newsletter_name, `${d.newsletter_slug}.${publicHost}`);
}

interface Variant {
  /** The renderer's cache key for this variant's compiled templates. */
  key: string;
  issue: IssueTemplates;
  /** The message's shared MIME parts, for `BulkMessageTemplate.build` per recipient. */
  template: BulkMessageTemplate;
}

/**
 * One digest's message, composed per recipient from what every message of the issue shares
 * (From, List-ID, the compiled templates, the MIME parts), worked out once per batch.
 */
export class DigestMessage {
  private readonly from: Sender;
  private readonly listId: string;
  /** Per variant (index = variant; 0 is the issue as it is): what its messages share. */
  private readonly variants: Variant[] = [];
  private readonly clickKey: Buffer;

  constructor(
    private readonly d: DigestRow,
    private readonly renderer: DigestRenderer,
    private readonly config: Pick<AppConfig, 'publicUrl' | 'appSecret' | 'mailFrom'>,
    variants: VariantTemplates[] = [],
    /** Where the From domain's DKIM key is looked up, per message (see `DkimKeys`). */
    private readonly dkim: DkimKeySource | null = null,
  ) {
    this.clickKey = clickKey(config.appSecret);
    this.from = senderOf({ name: d.newsletter_name, from_name: d.from_name, from_email: d.from_email }, config);
    this.listId = digestListId(d, new URL(config.publicUrl).hostname);
    this.variants[0] = this.variant(0, issueOf(d));
    this.add(variants);
  }

  /** Variants rendered after this message was first built (they render while the first batches send). */
  add(variants: VariantTemplates[]): void {
    for (const v of variants) this.variants[v.variant] = this.variant(v.variant, v);
  }

  has(variant: number): boolean {
    return this.variants[variant] !== undefined;
  }

  private variant(n: number, issue: IssueTemplates): Variant {
    return {
      key: `digest:${this.d.id}:${n}`,
      issue,
      template: new BulkMessageTemplate({
        from: this.from,
        fromAddress: senderAddress(this.from),
        subject: issue.subject,
        headers: { 'List-ID': this.listId, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
        dkim: this.dkim,
      }),
    };
  }

  /**
   * The recipient's variant. One not rendered yet is an error, never another variant: that one
   * could carry an article the reader was already sent (the batch fails and is retried).
   */
  private of(r: Recipient): Variant {
    const v = this.variants[r.variant];
    if (!v) throw new Error(`Digest ${this.d.id}: variant ${r.variant} is not rendered yet`);
    return v;
  }

  /**
   * The recipient's message written into `buffer`, or null when it does not fit the spliced form
   * (then `options`).
   */
  build(r: Recipient, buffer: MessageBuffer): BuiltMessage | null {
    const unsubscribeUrl = this.unsubscribeUrl(r.subscriptionId);
    const v = this.of(r);
    const spliced = this.renderer.personalizeSpliced(v.key, v.issue, this.vars(r, unsubscribeUrl));
    if (!spliced) return null;
    return v.template.build(
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
    const v = this.of(r);
    const mail = this.renderer.personalizeForSending(v.key, v.issue, this.vars(r, unsubscribeUrl));
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

  private vars(r: Recipient, unsubscribeUrl: string): PersonalVars {
    return {
      greeting: r.name ? `Hi ${r.name},` : 'Hello,',
      email: r.email,
      unsubscribeUrl,
      preferencesUrl: unsubscribeUrl,
      clickReader: readerPart(this.clickKey, this.d.id, r.subscriberId),
    };
  }
}
