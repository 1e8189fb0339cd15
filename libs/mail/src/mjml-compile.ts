/**
 * MJML to mail HTML and its plain-text part, with nothing of ours but this file: the render thread
 * (`mjml-thread.ts`) loads it alone. Counting and choosing where to compile is `compileMjml`'s.
 */
import { convert } from 'html-to-text';
import mjml2html from 'mjml';

/** html-to-text settings that keep Handlebars placeholders intact. */
const TEXT_OPTIONS = {
  wordwrap: 100,
  selectors: [
    { selector: 'h1', options: { uppercase: false } },
    { selector: 'h2', options: { uppercase: false } },
    { selector: 'img', format: 'skip' },
    // The hidden preheader belongs to the inbox list, not the body.
    { selector: 'div[style*="display:none"]', format: 'skip' },
    { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
  ],
};

/** The plain-text part of a mail's HTML (placeholders left as they are). */
export function htmlToText(html: string): string {
  return convert(html, TEXT_OPTIONS);
}

export type MjmlValidation = 'strict' | 'skip';

/** One mjml2html call and the text part of its HTML, in this thread. */
export async function compileMjmlHere(
  mjmlSource: string,
  validation: MjmlValidation,
): Promise<{ html: string; text: string }> {
  // fonts: {} — MJML would otherwise add a <link> and an @import of Google Fonts for any web font
  // the stack names: every open would tell Google a reader's IP. Mail loads nothing from third parties.
  const out = await mjml2html(mjmlSource, { validationLevel: validation, keepComments: false, fonts: {} });
  if (out.errors && out.errors.length > 0) {
    throw new Error(`MJML errors: ${out.errors.map((e) => e.formattedMessage).join('; ')}`);
  }
  return { html: out.html, text: htmlToText(out.html) };
}
