import type { Sender } from './bulk-message.js';
import { headerValue } from './mail-renderer.service.js';

/** A newsletter as far as its sender goes. */
export interface NewsletterSender {
  name: string;
  from_name: string | null;
  from_email: string | null;
}

/**
 * The From of a newsletter's mail: its own address (under its sender name, else its name) when
 * set, else `MAIL_FROM`, else `newsletter@` the public host under the newsletter's name.
 */
export function senderOf(n: NewsletterSender, config: { mailFrom?: string; publicUrl: string }): Sender {
  if (n.from_email) return { name: headerValue(n.from_name ?? n.name), address: n.from_email };
  if (config.mailFrom) return config.mailFrom;
  return { name: headerValue(n.name), address: `newsletter@${new URL(config.publicUrl).hostname}` };
}

/** The address of a From (`Name <a@b>` or `{ name, address }`): the envelope sender (MAIL FROM). */
export function senderAddress(from: Sender): string {
  return typeof from === 'string' ? (/<([^>]+)>/.exec(from)?.[1] ?? from) : from.address;
}
