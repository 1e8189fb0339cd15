import { BOUNCE_SAMPLES, bounceSample } from '../../../../test/support/bounce-samples.js';
import { type BounceClass, classifyReport, classifyStatus } from './bounce-classifier.js';
import { parseReport } from './bounce-parser.js';
import { bounceKey, verpAddress } from './bounce-token.js';

const verp = verpAddress(bounceKey('k'.repeat(64)), 'bounces.example.com', {
  kind: 'digest',
  digestId: '12',
  subscriberId: '345',
});
const rcpt = 'pat.reader@example.org';

async function classify(name: string) {
  return classifyReport(await parseReport(bounceSample(name, { verp, rcpt })));
}

describe('classifyReport over the samples (test/fixtures/bounces)', () => {
  const expected: Record<string, { class: BounceClass; status: string | null; source: string; detail?: RegExp }> = {
    'postfix-5.1.1-user-unknown': { class: 'hard', status: '5.1.1', source: 'dsn', detail: /User unknown/ },
    'postfix-4.4.1-delayed': { class: 'soft', status: '4.4.1', source: 'dsn', detail: /Connection timed out/ },
    'exim-permanent': { class: 'hard', status: '5.1.1', source: 'text', detail: /Recipient address rejected/ },
    'gmail-5.1.1': { class: 'hard', status: '5.1.1', source: 'dsn', detail: /does not exist/ },
    'outlook-5.1.10': { class: 'hard', status: '5.1.10', source: 'dsn', detail: /RecipientNotFound/ },
    'yahoo-554-dd': { class: 'hard', status: '554', source: 'text', detail: /doesn't have a yahoo\.com account/ },
    'qmail-5.1.1': { class: 'hard', status: '5.1.1', source: 'text', detail: /no mailbox here/ },
    'policy-5.7.1': { class: 'policy', status: '5.7.1', source: 'dsn', detail: /spamhaus/ },
    'exchange-mailbox-full-5.2.2': { class: 'failed', status: '5.2.2', source: 'dsn', detail: /mailbox full/ },
    'arf-abuse': { class: 'complaint', status: null, source: 'arf', detail: /abuse; Yahoo!-Mail-Feedback/ },
    'autoreply-out-of-office': { class: 'none', status: null, source: 'none' },
  };

  it('has an expectation for every sample and a sample for every expectation', () => {
    expect(Object.keys(expected).sort()).toEqual(BOUNCE_SAMPLES);
  });

  it.each(Object.entries(expected))('%s', async (name, want) => {
    const verdict = await classify(name);
    expect({ class: verdict.class, status: verdict.status, source: verdict.source }).toEqual({
      class: want.class,
      status: want.status,
      source: want.source,
    });
    if (want.detail) expect(verdict.detail).toMatch(want.detail);
    expect(verdict.detail.length).toBeLessThanOrEqual(300);
    expect(verdict.detail).not.toMatch(/[\r\n]/);
  });

  it('reads the text before the copy of the original message only (the Exim copy carries 4.4.4 and 450)', async () => {
    const raw = bounceSample('exim-permanent', { verp, rcpt }).replace(/550 5\.1\.1 /, 'said: ');
    const verdict = classifyReport(await parseReport(raw));
    expect(verdict.status).not.toBe('4.4.4');
    expect(verdict.class).not.toBe('soft');
  });

  it('a DSN whose action is "delivered" or "relayed" is no failure', async () => {
    const raw = bounceSample('postfix-5.1.1-user-unknown', { verp, rcpt })
      .replace('Action: failed', 'Action: relayed')
      .replace('Status: 5.1.1', 'Status: 2.0.0');
    expect((await parseReport(raw)).deliveryStatus).toHaveLength(1);
    expect(classifyReport(await parseReport(raw)).class).toBe('none');
  });

  it('a DSN that failed after its retries expired (Action: failed, Status 4.4.1) is transient', async () => {
    const raw = bounceSample('postfix-4.4.1-delayed', { verp, rcpt }).replace('Action: delayed', 'Action: failed');
    expect(classifyReport(await parseReport(raw))).toMatchObject({ class: 'soft', status: '4.4.1' });
  });

  it('a generic 5.0.0 status takes the enhanced code of its diagnostic', async () => {
    const raw = bounceSample('postfix-5.1.1-user-unknown', { verp, rcpt }).replace('Status: 5.1.1', 'Status: 5.0.0');
    expect(classifyReport(await parseReport(raw))).toMatchObject({ class: 'hard', status: '5.1.1' });
  });

  it('an ARF report of another feedback type (not-spam) is no complaint', async () => {
    const raw = bounceSample('arf-abuse', { verp, rcpt }).replace('Feedback-Type: abuse', 'Feedback-Type: not-spam');
    expect(classifyReport(await parseReport(raw))).toMatchObject({ class: 'none', source: 'arf' });
  });

  it('a message that is no report at all is none, whatever codes its text quotes', async () => {
    const raw = `From: someone@example.org\r\nTo: ${verp}\r\nSubject: Re: your newsletter\r\n\r\nI got 550 5.1.1 from my old address.\r\n`;
    expect(classifyReport(await parseReport(raw)).class).toBe('none');
  });
});

describe('classifyStatus (RFC 3463)', () => {
  it.each<[string, string, BounceClass]>([
    ['5.1.1', '', 'hard'],
    ['5.1.2', '', 'hard'],
    ['5.1.10', '', 'hard'],
    ['5.1.6', '', 'hard'],
    ['5.1.7', '', 'failed'],
    ['5.1.8', '', 'failed'],
    ['5.2.1', '', 'hard'],
    ['5.2.2', '', 'failed'],
    ['5.4.4', '', 'hard'],
    ['5.3.4', '', 'failed'],
    ['5.6.0', '', 'failed'],
    ['5.7.1', 'user unknown', 'policy'],
    ['5.7.26', '', 'policy'],
    ['5.0.0', 'No such user here', 'hard'],
    ['5.0.0', 'blocked using a block list', 'policy'],
    ['5.0.0', 'something else', 'failed'],
    ['4.2.2', 'mailbox full', 'soft'],
    ['4.7.1', '', 'soft'],
    ['2.0.0', '', 'none'],
  ])('%s (%s) → %s', (status, text, cls) => {
    expect(classifyStatus(status, text)).toBe(cls);
  });
});
