import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import Handlebars from 'handlebars';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APP_CONFIG, type AppConfig } from '../../config/src/config.js';
import { TEMPLATES_DIR } from '../../core/src/paths.js';
import { compileMjml, headerValue } from '../../mail/src/mail-renderer.service.js';

export interface IssueArticle {
  url: string;
  title: string;
  summary: string | null;
  imageUrl: string | null;
  topics: string[];
}

/** One digest issue, rendered once: HTML, text and subject with only the personal placeholders left. */
export interface IssueTemplates {
  subject: string;
  html: string;
  text: string;
}

export interface PersonalVars {
  greeting: string;
  email: string;
  unsubscribeUrl: string;
  preferencesUrl: string;
}

/** Placeholders that survive the issue render and are filled per recipient. */
const PERSONAL: PersonalVars = {
  greeting: '{{greeting}}',
  email: '{{email}}',
  unsubscribeUrl: '{{unsubscribeUrl}}',
  preferencesUrl: '{{preferencesUrl}}',
};

/** Article text must never open a placeholder of its own in the per-recipient pass. */
function inert(value: string): string {
  return value.replace(/\{(?=\{)/g, '{\u200b').replace(/\}(?=\})/g, '}\u200b');
}

function safeUrl(value: string | null): string | null {
  if (!value) return null;
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.toString() : null;
  } catch {
    return null;
  }
}

interface Compiled {
  html: Handlebars.TemplateDelegate;
  text: Handlebars.TemplateDelegate;
  /** The same HTML in its wire form (see `wireHtml`), compiled once per issue. */
  wire: Handlebars.TemplateDelegate;
}

/** The HTML part of a message as handed to nodemailer: ready-made 7bit MIME, or text it must encode. */
export type HtmlPart = string | { raw: string };

const NON_ASCII = /\P{ASCII}/u;
const NON_ASCII_ALL = /\P{ASCII}/gu;
/** RFC 5322 2.1.1: at most 998 characters on a line (a linear scan: a regex here backtracks per character). */
export function hasOverlongLine(s: string): boolean {
  for (let start = 0; start <= s.length;) {
    const nl = s.indexOf('\n', start);
    const end = nl === -1 ? s.length : nl;
    if (end - start - (s.charCodeAt(end - 1) === 13 ? 1 : 0) > 998) return true;
    if (nl === -1) return false;
    start = nl + 1;
  }
  return false;
}
export const HTML_7BIT_HEADERS = 'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n';

/**
 * HTML as it travels: every non-ASCII character as a numeric character reference (the same
 * document to any HTML parser) and CRLF line ends. Such a body needs no transfer encoding, so
 * nodemailer does not quoted-printable-encode ~40 kB per recipient.
 */
export function wireHtml(html: string): string {
  return html.replace(NON_ASCII_ALL, (c) => `&#${c.codePointAt(0)};`).replace(/\r?\n/g, '\r\n');
}

/** A 7bit MIME part when the personalised wire HTML allows it, else the HTML for nodemailer to encode. */
export function htmlPart(wire: string): HtmlPart {
  const ascii = NON_ASCII.test(wire) ? wireHtml(wire) : wire;
  return hasOverlongLine(ascii) ? ascii : { raw: HTML_7BIT_HEADERS + ascii };
}

/** The body of a ready 7bit HTML part (see `htmlPart`), or null when nodemailer must encode it. */
export function sevenBitBody(part: HtmlPart): string | null {
  return typeof part === 'string' ? null : part.raw.slice(HTML_7BIT_HEADERS.length);
}

/**
 * Renders a digest in two passes: once per issue (articles, MJML → HTML, text part: the only
 * mjml2html call), then per recipient only an escaped Handlebars substitution of the personal parts.
 */
@Injectable()
export class DigestRenderer implements OnModuleInit {
  private issueTemplate!: Handlebars.TemplateDelegate;
  private readonly cache = new Map<string, Compiled>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  async onModuleInit(): Promise<void> {
    const layout = await readFile(join(TEMPLATES_DIR, 'mail', 'layout.mjml'), 'utf8');
    const body = await readFile(join(TEMPLATES_DIR, 'mail', 'digest.mjml'), 'utf8');
    this.issueTemplate = Handlebars.compile(layout.replace('<!-- @body -->', body));
  }

  subjectFor(newsletterName: string, articles: IssueArticle[]): string {
    const [first, ...rest] = articles;
    return headerValue(`${newsletterName}: ${first.title}${rest.length ? ` and ${rest.length} more` : ''}`);
  }

  async renderIssue(newsletterName: string, articles: IssueArticle[], issueDate: Date): Promise<IssueTemplates> {
    const subject = this.subjectFor(newsletterName, articles);
    const mjml = this.issueTemplate({
      ...PERSONAL,
      subject: inert(subject),
      preview: inert(
        articles
          .map((a) => a.title)
          .join(' · ')
          .slice(0, 140),
      ),
      newsletterName: inert(newsletterName),
      tagline: 'Your weekly guide to a healthier back and joints',
      issueLabel: issueDate.toLocaleDateString('en-US', {
        weekday: 'long',
        month: 'long',
        day: 'numeric',
        year: 'numeric',
        timeZone: 'UTC',
      }),
      articles: articles.map((a) => ({
        url: safeUrl(a.url) ?? '#',
        title: inert(a.title),
        summary: a.summary ? inert(a.summary) : '',
        imageUrl: safeUrl(a.imageUrl),
        topicLine: inert(a.topics.slice(0, 3).join(' · ')),
      })),
      footerReason: `You are receiving this because you subscribed {{email}} to ${inert(newsletterName)}.`,
      postalAddress: inert(this.config.postalAddress),
    });
    const { html, text } = await compileMjml(mjml);
    return { subject, html, text };
  }

  private compiled(key: string, issue: IssueTemplates): Compiled {
    let c = this.cache.get(key);
    if (!c) {
      c = {
        html: Handlebars.compile(issue.html),
        text: Handlebars.compile(issue.text, { noEscape: true }),
        wire: Handlebars.compile(wireHtml(issue.html)),
      };
      if (this.cache.size > 50) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, c);
    }
    return c;
  }

  /** Per recipient: escaped substitution only. Compiled templates are cached per issue. */
  personalize(key: string, issue: IssueTemplates, vars: PersonalVars): { subject: string; html: string; text: string } {
    const c = this.compiled(key, issue);
    return { subject: issue.subject, html: c.html(vars), text: c.text(vars) };
  }

  /** As `personalize`, with the HTML as a ready MIME part (7bit wire form) for sending. */
  personalizeForSending(
    key: string,
    issue: IssueTemplates,
    vars: PersonalVars,
  ): { subject: string; html: HtmlPart; text: string } {
    const c = this.compiled(key, issue);
    return { subject: issue.subject, html: htmlPart(c.wire(vars)), text: c.text(vars) };
  }
}
