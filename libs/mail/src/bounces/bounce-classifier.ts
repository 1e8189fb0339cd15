import type { ParsedReport } from './bounce-parser.js';

/**
 * What a report means for the reader its VERP token names:
 * - `hard`: the address is gone (5.1.x but the sender's own, 5.2.1, 5.4.4, or a 5xx saying "no such
 *   user"): suppressed as bounced;
 * - `soft`: try again later (4.x.x, a "delayed" report): nothing changes;
 * - `policy`: the receiver refuses us (5.7.x: reputation, authentication, content policy): recorded,
 *   the reader is not to blame, nobody is suppressed;
 * - `failed`: another permanent failure of this message that says nothing about the address (5.2.2
 *   mailbox full, 5.3.4 too big, 5.6.x content, 5.1.7/5.1.8 our sender address…): recorded only;
 * - `complaint`: an ARF abuse report: suppressed as complained;
 * - `none`: not a failure report (an auto-reply, a "delivered" or "relayed" DSN, anything else).
 */
export type BounceClass = 'hard' | 'soft' | 'policy' | 'failed' | 'complaint' | 'none';

export interface BounceVerdict {
  class: BounceClass;
  /** The enhanced status code (RFC 3463), else the SMTP reply code, else null. */
  status: string | null;
  /** Where the verdict came from. */
  source: 'dsn' | 'arf' | 'text' | 'none';
  /** The diagnostic as the report gives it, one line, at most 300 characters. */
  detail: string;
}

/** Phrases of "this mailbox does not exist", for reports that give only a reply code or a x.0.0 status. */
const NO_SUCH_USER =
  /\b(user unknown|unknown user|no such (user|mailbox|recipient)|(mailbox|account|address|user|recipient)( \S+)? (does not|doesn't|does no longer) exist|(user|recipient|address) not found|recipient address rejected|mailbox unavailable|invalid (mailbox|recipient)|(doesn't|does not) have an? \S+ account|no mailbox here|mailbox (is )?disabled|account (has been )?disabled)\b/i;
/** Phrases of a refusal by policy: the sender's reputation or authentication, not the reader. */
const POLICY =
  /\b(blocked|block ?list|blacklist|spamhaus|spam|reputation|not authori[sz]ed|access denied|dmarc|dkim|spf|policy)\b/i;

/** Markers after which a plain-text bounce quotes the original message (its headers are not the diagnosis). */
const ORIGINAL_COPY =
  /^(-{2,} ?(this is a copy of|below this line is a copy|original message|forwarded message|undelivered message|message headers follow)|original message headers:)/im;

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** The class of an enhanced status code, with the diagnostic text for the codes that do not say enough. */
export function classifyStatus(status: string, diagnostic = ''): Exclude<BounceClass, 'complaint' | 'none'> | 'none' {
  const [cls, subject, detail] = status.split('.').map(Number);
  if (cls === 2) return 'none';
  if (cls === 4) return 'soft';
  if (subject === 7) return 'policy';
  if (subject === 1) return detail === 7 || detail === 8 ? 'failed' : 'hard';
  if (subject === 2 && detail === 1) return 'hard';
  if (subject === 4 && detail === 4) return 'hard';
  // 5.0.0 and friends: the code says "permanent", the text may say why.
  if (detail === 0 && NO_SUCH_USER.test(diagnostic)) return 'hard';
  if (detail === 0 && POLICY.test(diagnostic)) return 'policy';
  return 'failed';
}

/** An SMTP reply code alone (Yahoo's "554: delivery error: dd …"): 4xx soft; 5xx by its text. */
function classifyReply(code: string, diagnostic: string): BounceClass {
  if (code.startsWith('4')) return 'soft';
  if (NO_SUCH_USER.test(diagnostic)) return 'hard';
  if (POLICY.test(diagnostic)) return 'policy';
  return 'failed';
}

/** `Name: value` fields of one block, continuation lines joined; names lower-cased. */
function fields(block: string): Map<string, string> {
  const out = new Map<string, string>();
  let last: string | null = null;
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && last) out.set(last, `${out.get(last)} ${line.trim()}`);
    else {
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      last = m[1].toLowerCase();
      out.set(last, m[2].trim());
    }
  }
  return out;
}

function oneLine(s: string, max = 300): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, max);
}

/** Enhanced codes after a reply code ("550 5.1.1", "550-5.1.1", "550 #5.1.1"), else standalone ("(#5.1.1)"), never inside an IP address. */
function enhancedIn(text: string): string | null {
  const paired = /(?<![\d.])[45]\d\d[ -]#?([45]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)/.exec(text);
  if (paired) return paired[1];
  const alone = /(?<![\w.])#?([45]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)/.exec(text);
  return alone ? alone[1] : null;
}

/** The worst of several recipients' classes (VERP means one reader, but a report may repeat it). */
const RANK: Record<BounceClass, number> = { complaint: 6, hard: 5, policy: 4, failed: 3, soft: 2, none: 1 };

/** RFC 3464: the per-recipient blocks after the per-message one. */
function fromDeliveryStatus(parts: string[]): BounceVerdict | null {
  let best: BounceVerdict | null = null;
  for (const part of parts) {
    const blocks = part.split(/\r?\n[ \t]*\r?\n/).slice(1);
    for (const block of blocks) {
      const f = fields(block);
      const statusField = /^([245]\.\d{1,3}\.\d{1,3})/.exec(f.get('status') ?? '')?.[1];
      const diagnostic = (f.get('diagnostic-code') ?? '').replace(/^[^;]*;\s*/, '');
      const action = (f.get('action') ?? '').toLowerCase();
      if (!statusField && !action) continue;
      // A generic status (x.0.0) says less than the enhanced code in the diagnostic, where there is one.
      let status = statusField ?? null;
      const inDiagnostic = enhancedIn(diagnostic);
      if (inDiagnostic && (!status || status.endsWith('.0.0')) && inDiagnostic[0] === status?.[0])
        status = inDiagnostic;
      let cls: BounceClass;
      if (action === 'delayed') cls = 'soft';
      else if (action === 'delivered' || action === 'relayed' || action === 'expanded') cls = 'none';
      else if (status) cls = classifyStatus(status, diagnostic);
      else cls = 'none';
      const verdict: BounceVerdict = { class: cls, status, source: 'dsn', detail: oneLine(diagnostic || action) };
      if (!best || RANK[cls] > RANK[best.class]) best = verdict;
    }
  }
  return best;
}

/** RFC 5965: Feedback-Type abuse (or fraud, virus) is a complaint; not-spam and others change nothing. */
function fromFeedbackReport(parts: string[]): BounceVerdict | null {
  for (const part of parts) {
    const f = fields(part);
    const type = (f.get('feedback-type') ?? '').toLowerCase();
    if (!type) continue;
    const complaint = type === 'abuse' || type === 'fraud' || type === 'virus';
    return {
      class: complaint ? 'complaint' : 'none',
      status: null,
      source: 'arf',
      detail: oneLine(`Feedback-Type: ${type}; ${f.get('user-agent') ?? 'unknown reporter'}`),
    };
  }
  return null;
}

/** Plain-text bounces that are not RFC 3464: Exim, qmail, Yahoo, older Exchange and Lotus, many relays. */
const BOUNCE_TEXT =
  /this message was created automatically by mail delivery software|this is the qmail-send program|i'm afraid i wasn't able to deliver your message|unable to deliver your message to the following address|delivery to the following recipients? (has )?failed|could not be delivered to one or more recipients|your message (wasn't|was not|couldn't be|could not be) delivered|delivery has failed to these recipients/i;
const BOUNCE_SUBJECT =
  /^(undeliver(ed|able)|mail delivery failed|delivery status notification|failure notice|returned mail|delivery failure|non[- ]?delivery|message not delivered)/i;
const BOUNCE_SENDER = /^(mailer-daemon|postmaster)@/i;

function fromText(report: ParsedReport): BounceVerdict | null {
  const looksLikeBounce =
    BOUNCE_TEXT.test(report.text) ||
    BOUNCE_SUBJECT.test(report.subject.trim()) ||
    BOUNCE_SENDER.test(report.fromAddress);
  if (!looksLikeBounce) return null;
  const cut = report.text.search(ORIGINAL_COPY);
  const text = cut >= 0 ? report.text.slice(0, cut) : report.text;
  const enhanced = enhancedIn(text);
  // The line that carries the code (and the next: relays wrap them) is the diagnosis.
  const lineOf = (index: number) =>
    oneLine(
      text
        .slice(text.lastIndexOf('\n', index) + 1)
        .split(/\r?\n/, 2)
        .join(' '),
    );
  if (enhanced && ENHANCED.test(enhanced)) {
    return {
      class: classifyStatus(enhanced, text),
      status: enhanced,
      source: 'text',
      detail: lineOf(text.indexOf(enhanced)),
    };
  }
  // A reply code at the start of a line or after "said:" (Yahoo: "554: delivery error: dd …").
  const reply = /(?:^|said:)[ \t]*([45][0-5]\d)(?=[ :-])/m.exec(text);
  if (reply) {
    const detail = lineOf(reply.index + reply[0].length - 1);
    return { class: classifyReply(reply[1], detail), status: reply[1], source: 'text', detail };
  }
  return null;
}

/**
 * Classifies a delivery report: RFC 5965 feedback reports first, then RFC 3464 delivery status, then
 * the common plain-text bounces. Anything else (an out-of-office reply, a human's answer) is `none`.
 */
export function classifyReport(report: ParsedReport): BounceVerdict {
  return (
    fromFeedbackReport(report.feedbackReport) ??
    fromDeliveryStatus(report.deliveryStatus) ??
    fromText(report) ?? { class: 'none', status: null, source: 'none', detail: oneLine(report.subject) }
  );
}
