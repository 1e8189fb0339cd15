import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import Handlebars from 'handlebars';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { TEMPLATES_DIR } from '#core/paths.js';
import { QpTextSplice, type SplicedText } from '#mail/bulk-message.js';
import { compileMjml, headerValue, htmlToText, mailSource, preheaderText } from '#mail/mail-renderer.service.js';
import { digestSubject, introHtml, type IssueVoice, PREHEADER_MAX_GIVEN } from './digest-voice.js';
import { articlePart, clickKey } from './click-tokens.js';
import { MAX_VARIANTS, type PersonalizeMode, topicKey } from './issue-variants.js';

export interface IssueArticle {
  /** Needed for a tracked link to it (see click-tokens.ts). */
  id?: string;
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
  /** The reader's half of every tracked link of the mail (see click-tokens.ts); `0.<mac>` for nobody. */
  clickReader: string;
}

/** The links an issue carries besides its articles' own. */
export interface IssueLinks {
  digestId: string;
  newsletterSlug: string;
  /** Article links go through /c/:token (the newsletter's `tracking`, as the digest was planned). */
  tracking: boolean;
  /** "View in your browser" to the issue's web version (the newsletter's `archive`). */
  webVersion: boolean;
}

/** Placeholders that survive the issue render and are filled per recipient. */
const PERSONAL: PersonalVars = {
  greeting: '{{greeting}}',
  email: '{{email}}',
  unsubscribeUrl: '{{unsubscribeUrl}}',
  preferencesUrl: '{{preferencesUrl}}',
  clickReader: '{{clickReader}}',
};

/** Article text must never open a placeholder of its own in the per-recipient pass. */
function inert(value: string): string {
  return value.replace(/\{(?=\{)/g, '{\u200b').replace(/\}(?=\})/g, '}\u200b');
}

/** An http(s) URL as it is, else null: nothing else becomes a link or an image in a mail or on a page. */
export function safeUrl(value: string | null): string | null {
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
  /** The wire form as static byte segments around the personal values, when it can be one. */
  splice: WireSplice | null;
  /** The text as quoted-printable segments around the personal values, when it can be one. */
  textSplice: TextSplice | null;
}

const PLACEHOLDER = /\{\{(greeting|email|unsubscribeUrl|preferencesUrl|clickReader)\}\}/g;

/** The wire HTML of one recipient: an issue's static segments and this recipient's escaped values between them. */
export interface SplicedHtml {
  /** One more than `values`; the same Buffers for every recipient of the issue. */
  parts: readonly Buffer[];
  values: string[];
}

/**
 * A template split at its personal placeholders: the static segments (one more than the names)
 * and which value goes between them. Null unless every segment is what Handlebars outputs as it
 * is: no other tag, no escaped placeholder (`\{{`), no triple-stash (`{{{x}}}`) around one.
 */
function splitAtPlaceholders(template: string): { segments: string[]; names: (keyof PersonalVars)[] } | null {
  const segments: string[] = [];
  const names: (keyof PersonalVars)[] = [];
  let last = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    segments.push(template.slice(last, m.index));
    names.push(m[1] as keyof PersonalVars);
    last = m.index + m[0].length;
  }
  segments.push(template.slice(last));
  const plain = segments.every(
    (t, i) =>
      !t.includes('{{') &&
      !t.includes('}}') &&
      !(i < names.length && (t.endsWith('\\') || t.endsWith('{'))) &&
      !(i > 0 && t.startsWith('}')),
  );
  return plain ? { segments, names } : null;
}

/** A personal value as it enters the wire HTML: HTML-escaped, non-ASCII as numeric references, CRLF. */
function wireValue(value: string): string {
  const escaped = Handlebars.escapeExpression(value);
  return NON_ASCII.test(escaped) || escaped.includes('\n') ? wireHtml(escaped) : escaped;
}

/**
 * The wire HTML split once per issue at its personal placeholders: per recipient only the few
 * short values are escaped, and the message is assembled from Buffers (no 40 kB string built,
 * scanned and encoded per recipient). Exactly `htmlPart(wire(vars))`'s 7bit body.
 */
export class WireSplice {
  private constructor(
    private readonly parts: Buffer[],
    private readonly names: (keyof PersonalVars)[],
    /** Lines that carry placeholders: their static length and which placeholders (by index) they hold. */
    private readonly lines: { fixed: number; slots: number[] }[],
  ) {}

  /** Null when the template holds anything but the four plain placeholders, or is not 7bit-ready itself. */
  static of(wire: string): WireSplice | null {
    if (NON_ASCII.test(wire) || hasOverlongLine(wire.replace(PLACEHOLDER, ''))) return null;
    const split = splitAtPlaceholders(wire);
    if (!split) return null;
    const { segments, names } = split;
    // The lines the values land on: their length without the values must leave room for them.
    const lines: { fixed: number; slots: number[] }[] = [];
    let current: { fixed: number; slots: number[] } = { fixed: 0, slots: [] };
    segments.forEach((text, i) => {
      const nl = text.lastIndexOf('\n');
      if (nl === -1) current.fixed += text.length;
      else {
        current.fixed += text.indexOf('\n') - (text.charCodeAt(text.indexOf('\n') - 1) === 13 ? 1 : 0);
        if (current.slots.length) lines.push(current);
        current = { fixed: text.length - nl - 1, slots: [] };
      }
      if (i < names.length) current.slots.push(i);
    });
    if (current.slots.length) lines.push(current);
    return new WireSplice(
      segments.map((t) => Buffer.from(t, 'latin1')),
      names,
      lines,
    );
  }

  /** This recipient's values, or null when one would push a line past 998 characters. */
  render(vars: PersonalVars): SplicedHtml | null {
    // A value appears in many places (the reader's half of every tracked link): escaped once.
    const escaped: Partial<Record<keyof PersonalVars, string>> = {};
    const values = this.names.map((n) => (escaped[n] ??= wireValue(vars[n])));
    for (const line of this.lines) {
      let length = line.fixed;
      for (const i of line.slots) length += values[i].length;
      if (length > 998) return null;
    }
    return { parts: this.parts, values };
  }
}

/** The issue's text split once at its personal placeholders, each part quoted-printable-encoded (see `QpTextSplice`). */
export class TextSplice {
  private constructor(
    private readonly names: (keyof PersonalVars)[],
    private readonly qp: QpTextSplice,
  ) {}

  /** Null when the template holds anything but the four plain placeholders (then the Handlebars render). */
  static of(text: string): TextSplice | null {
    const split = splitAtPlaceholders(text);
    return split && new TextSplice(split.names, QpTextSplice.of(split.segments));
  }

  /** The text, as Handlebars renders it without escaping (`noEscape`), in quoted-printable parts. */
  render(vars: PersonalVars): SplicedText {
    return this.qp.render(this.names.map((n) => vars[n]));
  }
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
const HTML_7BIT_HEADERS = 'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n';

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

/** A list in words: "A", "A and B", "A, B and C". */
function inWords(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

/**
 * What a topic variant says about itself (so the copy is true for what the reader got): the
 * reader's topics (keys) named as the articles name them.
 */
export function topicsLine(mode: PersonalizeMode, topics: string[], articles: IssueArticle[], alreadySent = 0): string {
  // Articles left out because another digest already sent them to this reader.
  const left =
    alreadySent === 0
      ? ''
      : alreadySent === 1
        ? 'One article we already sent you is left out.'
        : `${alreadySent} articles we already sent you are left out.`;
  if (mode === 'off' || topics.length === 0) return left;
  const names = new Map<string, string>();
  for (const a of articles) for (const t of a.topics) if (!names.has(topicKey(t))) names.set(topicKey(t), t.trim());
  const list = inWords(topics.map((k) => names.get(k) ?? k));
  const line =
    mode === 'only'
      ? `This issue holds only the articles on ${list}, the topics you follow.`
      : `The articles on ${list}, the topics you follow, come first.`;
  return left ? `${line} ${left}` : line;
}

/** The inbox preview: the editor's preheader, else the article titles. */
export function issuePreheader(voice: IssueVoice, titles: string[]): string {
  return voice.preheader?.trim()
    ? preheaderText(voice.preheader, PREHEADER_MAX_GIVEN)
    : preheaderText(titles.join(' · '));
}

/** The footer's reader block (why you get this, unsubscribe, preferences): see templates/mail/layout.mjml. */
const READER_BLOCK = /<div class="mr-reader">[\s\S]*?<\/div>/;
/** The hidden preheader, first in the body: a test copy's banner goes right after it. */
const PREHEADER = /<div class="mr-preheader"[^>]*>[\s\S]*?<\/div>/;

/** Whether `html` is an issue `testCopyOf` can turn into a test copy (issues rendered before it was written are not). */
export function hasTestCopySlots(html: string): boolean {
  return READER_BLOCK.test(html) && PREHEADER.test(html);
}

/**
 * A test copy of an issue, made from the issue's own HTML (what readers get): `[Test] ` before the
 * subject, a banner at the top, and instead of the reader's footer (why you get this, unsubscribe)
 * a line saying whose test copy it is: no subscription stands behind it, so no link may pretend to
 * unsubscribe. `{{email}}` stays a placeholder (escaped per recipient); `requestedBy` is escaped here.
 */
export function testCopyOf(issue: IssueTemplates, requestedBy: string): IssueTemplates {
  if (!hasTestCopySlots(issue.html)) throw new Error('This issue was rendered without the test-copy slots');
  const by = inert(Handlebars.escapeExpression(requestedBy));
  const banner =
    '<div class="mr-test-banner" style="margin:0 auto;max-width:600px;padding:12px 16px;background-color:#fff4ce;' +
    "border:2px dashed #8a6d00;color:#1b2733;font-family:-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif;" +
    'font-size:15px;line-height:1.5;text-align:center;"><p style="margin:0;"><strong>TEST COPY</strong> · ' +
    'This is a test copy of this digest. Readers get it with their own greeting and unsubscribe link.</p></div>';
  const footer =
    `<div class="mr-reader"><p style="margin: 0 0 10px;">This is a test copy sent to {{email}} by ${by}; ` +
    'readers get their own unsubscribe link here.</p></div>';
  const html = issue.html.replace(PREHEADER, (pre) => `${pre}\n${banner}`).replace(READER_BLOCK, () => footer);
  return { subject: headerValue(`[Test] ${issue.subject}`), html, text: htmlToText(html) };
}

/**
 * Renders a digest in two passes: once per issue (articles, MJML → HTML, text part: the only
 * mjml2html call), then per recipient only an escaped Handlebars substitution of the personal parts.
 */
@Injectable()
export class DigestRenderer implements OnModuleInit {
  private issueTemplate!: Handlebars.TemplateDelegate;
  private readonly cache = new Map<string, Compiled>();
  private key: Buffer | undefined;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  async onModuleInit(): Promise<void> {
    const body = await readFile(join(TEMPLATES_DIR, 'mail', 'digest.mjml'), 'utf8');
    this.issueTemplate = Handlebars.compile(await mailSource(body));
  }

  /**
   * The issue with the editor's voice (see `IssueVoice`): subject, inbox preview (also the first
   * line of the text part) and an intro after the greeting.
   */
  async renderIssue(
    newsletterName: string,
    articles: IssueArticle[],
    issueDate: Date,
    voice: IssueVoice = {},
    variant: { mode: PersonalizeMode; topics: string[]; alreadySent?: number } | null = null,
    validation: 'strict' | 'skip' = 'strict',
    links: IssueLinks | null = null,
  ): Promise<IssueTemplates> {
    const titles = articles.map((a) => a.title);
    const subject = digestSubject(voice, { newsletterName, titles, date: issueDate });
    const preview = issuePreheader(voice, titles);
    const intro = introHtml(voice.intro);
    const mjml = this.issueTemplate({
      ...PERSONAL,
      subject: inert(subject),
      preview: inert(preview),
      intro: intro ? inert(intro) : null,
      topicsLine: variant ? inert(topicsLine(variant.mode, variant.topics, articles, variant.alreadySent)) : null,
      newsletterName: inert(newsletterName),
      tagline: 'Your weekly guide to a healthier back and joints',
      issueLabel: issueDate.toLocaleDateString('en-US', {
        weekday: 'long',
        month: 'long',
        day: 'numeric',
        year: 'numeric',
        timeZone: 'UTC',
      }),
      webVersionUrl: links?.webVersion ? this.webVersionUrl(links.newsletterSlug, links.digestId) : null,
      articles: articles.map((a) => ({
        url: this.articleUrl(a, links),
        title: inert(a.title),
        summary: a.summary ? inert(a.summary) : '',
        imageUrl: safeUrl(a.imageUrl),
        topicLine: inert(a.topics.slice(0, 3).join(' · ')),
      })),
      footerReason: `You are receiving this because you subscribed {{email}} to ${inert(newsletterName)}.`,
      postalAddress: inert(this.config.postalAddress),
      privacyUrl: this.config.privacyUrl ? inert(this.config.privacyUrl) : null,
    });
    // Variants past the first (validation skipped) render in the render thread: the main thread goes on sending.
    const { html, text } = await compileMjml(mjml, validation, validation === 'skip' ? 'thread' : 'here');
    // The preheader leads the text part too (the HTML's is hidden, and html-to-text skips it).
    return { subject, html, text: preview ? `${inert(preview)}\n\n${text}` : text };
  }

  /** An issue's web version (see the archive routes). */
  webVersionUrl(slug: string, digestId: string): string {
    return `${this.config.publicUrl}/newsletters/${encodeURIComponent(slug)}/issues/${digestId}`;
  }

  /** The article's link: tracked (its reader half a placeholder) or its own URL. */
  private articleUrl(a: IssueArticle, links: IssueLinks | null): string {
    const url = safeUrl(a.url);
    if (!url) return '#';
    if (!links?.tracking || !a.id) return url;
    this.key ??= clickKey(this.config.appSecret);
    return `${this.config.publicUrl}/c/${articlePart(this.key, links.digestId, a.id)}.${PERSONAL.clickReader}`;
  }

  private compiled(key: string, issue: IssueTemplates): Compiled {
    let c = this.cache.get(key);
    if (!c) {
      const wire = wireHtml(issue.html);
      c = {
        html: Handlebars.compile(issue.html),
        text: Handlebars.compile(issue.text, { noEscape: true }),
        wire: Handlebars.compile(wire),
        splice: WireSplice.of(wire),
        textSplice: TextSplice.of(issue.text),
      };
      // Room for every variant of a few issues at once (a digest has up to MAX_VARIANTS).
      if (this.cache.size > 4 * MAX_VARIANTS) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, c);
    }
    return c;
  }

  /** Per recipient: escaped substitution only. Compiled templates are cached per issue. */
  personalize(key: string, issue: IssueTemplates, vars: PersonalVars): { subject: string; html: string; text: string } {
    const c = this.compiled(key, issue);
    return { subject: issue.subject, html: c.html(vars), text: c.text(vars) };
  }

  /**
   * For bulk sending: the wire HTML as spliced segments (see `WireSplice`) and the text as
   * quoted-printable segments (see `TextSplice`; the rendered string when the issue's text does not
   * split); null when this issue or recipient does not fit that form (then `personalizeForSending`).
   */
  personalizeSpliced(
    key: string,
    issue: IssueTemplates,
    vars: PersonalVars,
  ): { subject: string; html: SplicedHtml; text: SplicedText | string } | null {
    const c = this.compiled(key, issue);
    const html = c.splice?.render(vars);
    if (!html) return null;
    return { subject: issue.subject, html, text: c.textSplice ? c.textSplice.render(vars) : c.text(vars) };
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
