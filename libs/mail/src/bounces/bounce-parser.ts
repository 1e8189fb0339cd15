import { type ParsedMail, simpleParser } from 'mailparser';

/**
 * A report as the classifier reads it: the headers, the human-readable text (before any copy of
 * the original message), and the machine-readable parts of a multipart/report.
 */
export interface ParsedReport {
  /** Lower-case header names; the value as mailparser decodes it (structured for Content-Type). */
  headers: ParsedMail['headers'];
  subject: string;
  fromAddress: string;
  messageId: string | null;
  /** The notification's text part(s), as text. */
  text: string;
  /** `message/delivery-status` parts (RFC 3464), as text. */
  deliveryStatus: string[];
  /** `message/feedback-report` parts (RFC 5965), as text. */
  feedbackReport: string[];
}

/** Parses a report with mailparser; the delivery-status parts are kept apart (not merged into the text). */
export async function parseReport(raw: Buffer | string): Promise<ParsedReport> {
  const mail = await simpleParser(raw, {
    keepDeliveryStatus: true,
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipTextLinks: true,
    skipImageLinks: true,
  });
  const parts = (type: string) =>
    mail.attachments.filter((a) => a.contentType.toLowerCase() === type).map((a) => a.content.toString('utf8'));
  return {
    headers: mail.headers,
    subject: mail.subject ?? '',
    fromAddress: mail.from?.value[0]?.address?.toLowerCase() ?? '',
    messageId: mail.messageId ?? null,
    text: mail.text ?? '',
    deliveryStatus: parts('message/delivery-status'),
    feedbackReport: parts('message/feedback-report'),
  };
}
