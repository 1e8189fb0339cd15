/** The SMTP error policy's questions about a failed send: retry, give up, suppress, pause. */

export type SmtpFailure = 'permanent' | 'transient';

interface SmtpError {
  responseCode?: number;
  response?: string;
  message?: string;
}

/** 5xx is permanent, 4xx and connection problems are worth a retry. */
export function classifySmtpError(err: unknown): SmtpFailure {
  const code = (err as SmtpError | null)?.responseCode;
  return typeof code === 'number' && code >= 500 && code < 600 ? 'permanent' : 'transient';
}

/** A hard bounce: the mailbox does not exist (enhanced status 5.1.x). */
export function isHardBounce(err: unknown): boolean {
  const e = err as SmtpError | null;
  if (classifySmtpError(err) !== 'permanent') return false;
  // The enhanced code right after the reply code ("550 5.1.1", "550-5.1.1"), not any 5.1.x in the text (an IP address).
  return /\b5\d\d[ -]5\.1\.\d{1,3}\b/.test(`${e?.response ?? ''} ${e?.message ?? ''}`);
}

/** A policy rejection (5.7.x): our reputation or authentication, not the mailbox. */
export function isPolicyRejection(err: unknown): boolean {
  const e = err as SmtpError | null;
  if (classifySmtpError(err) !== 'permanent') return false;
  return /\b5\d\d[ -]5\.7\.\d{1,3}\b/.test(`${e?.response ?? ''} ${e?.message ?? ''}`);
}
