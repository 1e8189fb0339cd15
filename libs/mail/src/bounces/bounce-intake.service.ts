import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { SuppressionsService } from '#subscriptions/suppressions.service.js';
import { type BounceVerdict, classifyReport } from './bounce-classifier.js';
import { type ParsedReport, parseReport } from './bounce-parser.js';
import { type BounceOutcome, BounceReportsRepository } from './bounce-reports.repository.js';
import { type BounceRef, bounceKey, readBounceToken } from './bounce-token.js';

/** What became of one report for one VERP recipient. */
export type IntakeResult = 'suppressed' | 'recorded' | 'duplicate' | 'no-action' | 'forged' | 'unknown-reader';

const OUTCOME: Partial<Record<BounceVerdict['class'], BounceOutcome>> = {
  hard: 'bounced',
  complaint: 'complained',
  policy: 'policy',
  failed: 'failed',
};

/** Addresses quoted in a diagnostic: the reader is known by id, the detail keeps no address. */
const ADDRESS = /[^\s<>()[\]"';:,]+@[^\s<>()[\]"';:,]+/g;

/**
 * Delivery reports that reached a VERP address (`bounces+<token>@BOUNCE_DOMAIN`): classified, recorded
 * once, and turned into a suppression through the same path as the providers' webhooks. The reader is
 * the one the token names, never an address read from the report; a forged token changes nothing.
 */
@Injectable()
export class BounceIntake {
  private readonly logger = new Logger('Bounces');
  private readonly key: Buffer;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly reports: BounceReportsRepository,
    private readonly suppressions: SuppressionsService,
  ) {
    this.key = bounceKey(config.appSecret);
  }

  /** One report as received, for each of its VERP tokens (one per RCPT TO). */
  async receive(raw: Buffer, tokens: string[]): Promise<IntakeResult[]> {
    let report: ParsedReport;
    try {
      report = await parseReport(raw);
    } catch (err) {
      // Unreadable as a message: answering 4xx would have the relay send it again and again.
      this.logger.debug(`Unreadable report ignored: ${err instanceof Error ? err.message : String(err)}`);
      return tokens.map(() => 'no-action');
    }
    const verdict = classifyReport(report);
    // The report's identity: its Message-ID, else its bytes.
    const identity = report.messageId ?? createHash('sha256').update(raw).digest('hex');
    const results: IntakeResult[] = [];
    for (const token of tokens) results.push(await this.apply(token, verdict, identity));
    return results;
  }

  private async apply(token: string, verdict: BounceVerdict, identity: string): Promise<IntakeResult> {
    const ref = readBounceToken(this.key, token);
    if (!ref) {
      this.logger.debug(`Report to an unsigned or tampered VERP token ignored (${verdict.class})`);
      return 'forged';
    }
    const outcome = OUTCOME[verdict.class];
    if (!outcome) {
      this.logger.debug(
        `Report for ${describe(ref)}: ${verdict.class} (${verdict.status ?? 'no status'}), nothing to do`,
      );
      return 'no-action';
    }
    const subscriberId = 'subscriberId' in ref ? ref.subscriberId : null;
    const reader = subscriberId ? await this.reports.subscriber(this.ds, subscriberId) : null;
    if (subscriberId && !reader) {
      this.logger.debug(`Report for ${describe(ref)}: the reader no longer exists`);
      return 'unknown-reader';
    }
    const detail = `VERP ${verdict.source} ${verdict.status ?? ''}: ${verdict.detail}`.replace(ADDRESS, '<address>');
    const key = createHash('sha256').update(`${token.toLowerCase()}\n${identity}`).digest();
    const recorded = await this.reports.record(this.ds, {
      key,
      outcome,
      status: verdict.status,
      mailKind: ref.kind,
      digestId: 'digestId' in ref ? ref.digestId : null,
      subscriberId,
      detail: detail.slice(0, 500),
    });
    if (recorded.applied) return 'duplicate';
    let result: IntakeResult = 'recorded';
    if (reader && (outcome === 'bounced' || outcome === 'complained')) {
      await this.suppressions.recordEvent(reader.email, outcome === 'bounced' ? 'hard' : 'complaint', detail);
      result = 'suppressed';
    }
    await this.reports.markApplied(this.ds, recorded.id);
    this.logger.log(`Report for ${describe(ref)}: ${outcome} (${verdict.status ?? verdict.source}), ${result}`);
    return result;
  }
}

function describe(ref: BounceRef): string {
  switch (ref.kind) {
    case 'digest':
      return `digest ${ref.digestId}, subscriber ${ref.subscriberId}`;
    case 'test':
      return `a test copy of digest ${ref.digestId}`;
    default:
      return `the ${ref.kind} mail of subscriber ${ref.subscriberId}`;
  }
}
