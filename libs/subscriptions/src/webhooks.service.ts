import {
  BadRequestException,
  Inject,
  Injectable,
  Logger,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import {
  SNS_MESSAGE_TYPES,
  SnsCertificateUnavailableError,
  SnsMessageVerifier,
  SnsSignatureError,
  trustedSnsUrl,
} from './sns-signature.js';
import { type BounceType, SuppressionsService } from './suppressions.service.js';

export interface WebhookResult {
  status: 'processed' | 'ignored' | 'subscribed';
  events: number;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const obj = (v: unknown): Record<string, unknown> =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Bounce and complaint events, each provider in its own format, all into the suppression list. */
@Injectable()
export class WebhooksService {
  private readonly logger = new Logger(WebhooksService.name);
  private readonly sns: SnsMessageVerifier;

  constructor(
    private readonly suppressions: SuppressionsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.sns = new SnsMessageVerifier(config.webhooks.sesSnsOriginPattern);
  }

  private async apply(events: { email: string; type: BounceType; detail: string }[]): Promise<WebhookResult> {
    let applied = 0;
    for (const e of events)
      if ((await this.suppressions.recordEvent(e.email, e.type, e.detail)) === 'suppressed') applied += 1;
    return { status: applied > 0 ? 'processed' : 'ignored', events: events.length };
  }

  /** `{ email, type: "hard" | "soft" | "complaint" }`, behind the admin API key. */
  async generic(body: unknown): Promise<WebhookResult> {
    const b = obj(body);
    const email = str(b.email);
    const type = str(b.type);
    if (!email) throw new BadRequestException(['email must be a string']);
    if (type !== 'hard' && type !== 'soft' && type !== 'complaint')
      throw new BadRequestException(['type must be one of hard, soft, complaint']);
    return this.apply([{ email, type, detail: `generic webhook: ${type}` }]);
  }

  /** Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key. */
  async mailgun(body: unknown): Promise<WebhookResult> {
    const key = this.config.webhooks.mailgunSigningKey;
    if (!key) throw new UnauthorizedException('Mailgun webhooks are not configured (MAILGUN_WEBHOOK_SIGNING_KEY)');
    const b = obj(body);
    const sig = obj(b.signature);
    const timestamp = str(sig.timestamp) ?? (typeof sig.timestamp === 'number' ? String(sig.timestamp) : undefined);
    const token = str(sig.token);
    const signature = str(sig.signature);
    if (!timestamp || !token || !signature) throw new UnauthorizedException('Missing Mailgun signature');
    const expected = createHmac('sha256', key)
      .update(timestamp + token)
      .digest('hex');
    if (!safeEqual(expected, signature)) throw new UnauthorizedException('Invalid Mailgun signature');
    if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 15 * 60)
      throw new UnauthorizedException('Stale Mailgun signature');
    const ev = obj(b['event-data']);
    const email = str(ev.recipient);
    if (!email) return { status: 'ignored', events: 0 };
    const event = str(ev.event);
    const type: BounceType | null =
      event === 'complained'
        ? 'complaint'
        : event === 'failed'
          ? str(ev.severity) === 'permanent'
            ? 'hard'
            : 'soft'
          : null;
    if (!type) return { status: 'ignored', events: 0 };
    return this.apply([{ email, type, detail: `mailgun ${event} ${str(ev.reason) ?? ''}`.trim() }]);
  }

  /** Postmark: HTTP basic auth configured on the webhook. */
  async postmark(authorization: string | undefined, body: unknown): Promise<WebhookResult> {
    const { postmarkUser, postmarkPassword } = this.config.webhooks;
    if (!postmarkUser || !postmarkPassword)
      throw new UnauthorizedException('Postmark webhooks are not configured (POSTMARK_WEBHOOK_USER/PASSWORD)');
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization ?? '');
    const given = m ? Buffer.from(m[1], 'base64').toString('utf8') : '';
    if (!safeEqual(given, `${postmarkUser}:${postmarkPassword}`))
      throw new UnauthorizedException('Invalid Postmark credentials');
    const b = obj(body);
    const email = str(b.Email);
    if (!email) return { status: 'ignored', events: 0 };
    const record = str(b.RecordType);
    const kind = str(b.Type);
    let type: BounceType | null = null;
    if (record === 'SpamComplaint' || kind === 'SpamComplaint') type = 'complaint';
    else if (record === 'Bounce')
      type = kind === 'HardBounce' || kind === 'BadEmailAddress' || kind === 'ManuallyDeactivated' ? 'hard' : 'soft';
    if (!type) return { status: 'ignored', events: 0 };
    return this.apply([{ email, type, detail: `postmark ${record} ${kind ?? ''}`.trim() }]);
  }

  /**
   * Amazon SES through SNS. Two locks: the endpoint URL carries a shared token, and every message
   * must carry a valid SNS signature (SignatureVersion 1 or 2) by a certificate fetched from an
   * SNS host (SES_SNS_ORIGIN_PATTERN). SubscriptionConfirmation is confirmed by fetching its
   * SubscribeURL (again only an SNS host); Notification carries the SES event.
   */
  async ses(token: string | undefined, rawBody: unknown): Promise<WebhookResult> {
    const expected = this.config.webhooks.sesToken;
    if (!expected) throw new UnauthorizedException('SES webhooks are not configured (SES_WEBHOOK_TOKEN)');
    if (!token || !safeEqual(token, expected)) throw new UnauthorizedException('Invalid SES webhook token');
    let envelope: Record<string, unknown>;
    try {
      envelope = obj(typeof rawBody === 'string' ? JSON.parse(rawBody) : rawBody);
    } catch {
      throw new BadRequestException(['body must be an SNS message (JSON)']);
    }
    const type = str(envelope.Type);
    if (!type || !SNS_MESSAGE_TYPES.includes(type))
      throw new BadRequestException([`Type must be one of ${SNS_MESSAGE_TYPES.join(', ')}`]);
    try {
      await this.sns.verify(envelope);
    } catch (err) {
      if (err instanceof SnsCertificateUnavailableError) {
        // Not the sender's fault: a 5xx makes SNS deliver it again later.
        this.logger.warn(err.message);
        throw new ServiceUnavailableException('SNS signing certificate unavailable, try again');
      }
      if (err instanceof SnsSignatureError) throw new UnauthorizedException(`Invalid SNS message: ${err.message}`);
      throw err;
    }
    const topics = this.config.webhooks.sesTopicArns;
    if (topics && !topics.includes(str(envelope.TopicArn) ?? ''))
      throw new UnauthorizedException('Invalid SNS message: unexpected TopicArn');
    if (type === 'SubscriptionConfirmation') {
      const url = trustedSnsUrl(envelope.SubscribeURL, this.config.webhooks.sesSnsOriginPattern);
      if (!url) throw new BadRequestException(['SubscribeURL must be an https SNS URL']);
      const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(10_000) }).catch((err: unknown) => {
        throw new ServiceUnavailableException(
          `SNS subscription confirmation failed: ${err instanceof Error ? err.message : String(err)}`,
        );
      });
      await res.body?.cancel();
      if (!res.ok) throw new BadRequestException([`SNS subscription confirmation failed: HTTP ${res.status}`]);
      this.logger.log(`SNS subscription confirmed for ${str(envelope.TopicArn) ?? 'a topic'}`);
      return { status: 'subscribed', events: 0 };
    }
    if (type !== 'Notification') return { status: 'ignored', events: 0 };
    let message: Record<string, unknown>;
    try {
      message = obj(typeof envelope.Message === 'string' ? JSON.parse(envelope.Message) : envelope.Message);
    } catch {
      throw new BadRequestException(['Message must be an SES notification (JSON)']);
    }
    const kind = str(message.notificationType) ?? str(message.eventType);
    const events: { email: string; type: BounceType; detail: string }[] = [];
    if (kind === 'Bounce') {
      const bounce = obj(message.bounce);
      const hard = str(bounce.bounceType) === 'Permanent';
      for (const r of Array.isArray(bounce.bouncedRecipients) ? bounce.bouncedRecipients : []) {
        const email = str(obj(r).emailAddress);
        if (email)
          events.push({
            email,
            type: hard ? 'hard' : 'soft',
            detail: `ses bounce ${str(bounce.bounceType)}/${str(bounce.bounceSubType)}`,
          });
      }
    } else if (kind === 'Complaint') {
      const complaint = obj(message.complaint);
      for (const r of Array.isArray(complaint.complainedRecipients) ? complaint.complainedRecipients : []) {
        const email = str(obj(r).emailAddress);
        if (email) events.push({ email, type: 'complaint', detail: 'ses complaint' });
      }
    }
    return this.apply(events);
  }
}
