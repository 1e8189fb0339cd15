import { Injectable, type OnModuleInit } from '@nestjs/common';
import Handlebars from 'handlebars';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TEMPLATES_DIR } from '#core/paths.js';
import { compileMjmlHere, type MjmlValidation } from './mjml-compile.js';
import { MjmlThread } from './mjml-threads.js';

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

export { htmlToText } from './mjml-compile.js';

/** Longest preheader shown: inbox lists show ~90-140 characters, so more is never read. */
export const PREHEADER_MAX = 150;

/**
 * Invisible filler after the preheader, so the inbox preview does not go on into the body text:
 * combining grapheme joiner, zero-width non-joiner and no-break space, on short lines (the wire
 * HTML keeps every line under 998 characters).
 */
export const PREHEADER_PAD = Array.from({ length: 6 }, () => '&#847;&zwnj;&nbsp;'.repeat(15)).join('\n');

/** The preheader text: whitespace collapsed, cut at a word boundary to at most `max` characters. */
export function preheaderText(value: string, max = PREHEADER_MAX): string {
  const text = value.replace(/\s+/g, ' ').trim();
  if (text.length <= max) return text;
  const head = text.slice(0, max - 1);
  const space = head.lastIndexOf(' ');
  const cut = space > max / 2 ? head.slice(0, space) : head;
  return `${cut.replace(/[\s,;:·–—-]+$/u, '')}…`;
}

/** layout.mjml with `body` in it and the preheader filler in place: the MJML source of one mail kind. */
export async function mailSource(body: string): Promise<string> {
  const layout = await readFile(join(TEMPLATES_DIR, 'mail', 'layout.mjml'), 'utf8');
  return layout.replace('<!-- @preheader-pad -->', PREHEADER_PAD).replace('<!-- @body -->', body);
}

/**
 * Compiles a template once: MJML → HTML with Handlebars placeholders left in, then the plain-text
 * part from that same HTML. Per recipient only escaped Handlebars substitution remains.
 * `skip` leaves out MJML's validation (about half its time) for sources built from a template
 * that already passed it (the topic variants of an issue: the same markup in another order).
 */
export async function compileMjml(
  mjmlSource: string,
  validation: MjmlValidation = 'strict',
  where: 'here' | 'thread' = 'here',
): Promise<{ html: string; text: string }> {
  MailRenderer.mjmlCalls += 1;
  return where === 'thread' ? renderThread.compile(mjmlSource, validation) : compileMjmlHere(mjmlSource, validation);
}

/** The process's render thread (see `MjmlThread`). */
export const renderThread = new MjmlThread();

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
    for (const kind of Object.keys(SUBJECTS) as MailKind[]) {
      const body = await readFile(join(TEMPLATES_DIR, 'mail', `${kind}.mjml`), 'utf8');
      const { html, text } = await compileMjml(await mailSource(body));
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
    const preview = typeof vars.preview === 'string' ? preheaderText(vars.preview) : '';
    const all = { ...vars, subject, preview };
    return { subject, html: t.html(all), text: t.text(all) };
  }
}
