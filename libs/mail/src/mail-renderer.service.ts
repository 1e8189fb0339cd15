import { Injectable, type OnModuleInit } from '@nestjs/common';
import Handlebars from 'handlebars';
import { convert } from 'html-to-text';
import mjml2html from 'mjml';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TEMPLATES_DIR } from '../../core/src/paths.js';

export type MailKind = 'confirmation' | 'guide';

const SUBJECTS: Record<MailKind, string> = {
  confirmation: 'Please confirm your subscription to {{newsletterNames}}',
  guide: 'Your free guide: {{guideTitle}}',
};

export interface CompiledMail {
  subject: Handlebars.TemplateDelegate;
  html: Handlebars.TemplateDelegate;
  text: Handlebars.TemplateDelegate;
}

export interface RenderedMail {
  subject: string;
  html: string;
  text: string;
}

/** html-to-text settings that keep Handlebars placeholders intact. */
const TEXT_OPTIONS = {
  wordwrap: 100,
  selectors: [
    { selector: 'h1', options: { uppercase: false } },
    { selector: 'h2', options: { uppercase: false } },
    { selector: 'img', format: 'skip' },
    // MJML's hidden preview text belongs to the inbox list, not the body.
    { selector: 'div[style*="display:none"]', format: 'skip' },
    { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
  ],
};

/**
 * Compiles a template once: MJML → HTML with Handlebars placeholders left in, then the plain-text
 * part from that same HTML. Per recipient only escaped Handlebars substitution remains.
 */
export async function compileMjml(mjmlSource: string): Promise<{ html: string; text: string }> {
  MailRenderer.mjmlCalls += 1;
  const out = await mjml2html(mjmlSource, { validationLevel: 'strict', keepComments: false });
  if (out.errors && out.errors.length > 0) {
    throw new Error(`MJML errors: ${out.errors.map((e) => e.formattedMessage).join('; ')}`);
  }
  return { html: out.html, text: convert(out.html, TEXT_OPTIONS) };
}

/** Strips anything that could split a header. */
export function headerValue(value: string): string {
  return value.replace(/[\r\n\t\0]+/g, ' ').trim();
}

@Injectable()
export class MailRenderer implements OnModuleInit {
  /** Counts mjml2html calls (tests and benchmarks assert it stays at one per template). */
  static mjmlCalls = 0;
  private readonly compiled = new Map<MailKind, CompiledMail>();

  async onModuleInit(): Promise<void> {
    const layout = await readFile(join(TEMPLATES_DIR, 'mail', 'layout.mjml'), 'utf8');
    for (const kind of Object.keys(SUBJECTS) as MailKind[]) {
      const body = await readFile(join(TEMPLATES_DIR, 'mail', `${kind}.mjml`), 'utf8');
      const { html, text } = await compileMjml(layout.replace('<!-- @body -->', body));
      this.compiled.set(kind, {
        subject: Handlebars.compile(SUBJECTS[kind], { noEscape: true, strict: false }),
        html: Handlebars.compile(html),
        // Plain text is not HTML: no entity escaping there.
        text: Handlebars.compile(text, { noEscape: true }),
      });
    }
  }

  render(kind: MailKind, vars: Record<string, unknown>): RenderedMail {
    const t = this.compiled.get(kind);
    if (!t) throw new Error(`Mail template "${kind}" is not compiled`);
    const subject = headerValue(t.subject(vars));
    const all = { ...vars, subject };
    return { subject, html: t.html(all), text: t.text(all) };
  }
}
