import Handlebars from 'handlebars';
import MarkdownIt from 'markdown-it';
import { headerValue } from '#mail/mail-renderer.service.js';
import { DEFAULT_SUBJECT_TEMPLATE, subjectTemplateError } from '#subscriptions/subject-template.js';

/** What the editor may write for one digest, and the newsletter's default subject. */
export interface IssueVoice {
  /** The digest's own subject (one line, ≤ 150 characters). */
  subject?: string | null;
  /** The newsletter's subject template (Handlebars over SUBJECT_VARIABLES); null: the built-in one. */
  subjectTemplate?: string | null;
  /** The inbox preview (≤ 200 characters); null: the article titles. */
  preheader?: string | null;
  /** Markdown (≤ 5 000 characters), shown after the greeting. */
  intro?: string | null;
}

export const SUBJECT_MAX = 150;
export const PREHEADER_MAX_GIVEN = 200;
export const INTRO_MAX = 5000;

/** The editor's fields of a new digest, checked: trimmed, empty ones null; or the reasons they are refused. */
export function checkVoice(input: {
  subject?: unknown;
  preheader?: unknown;
  intro?: unknown;
}): { voice: { subject: string | null; preheader: string | null; intro: string | null } } | { errors: string[] } {
  const errors: string[] = [];
  const text = (name: string, value: unknown, max: number, oneLine: boolean): string | null => {
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') {
      errors.push(`${name} must be a string`);
      return null;
    }
    const v = value.replace(/\r\n/g, '\n').trim();
    if (v.includes('\0')) errors.push(`${name} must not contain NUL characters`);
    else if (oneLine && /[\r\n]/.test(v)) errors.push(`${name} must be one line`);
    else if (v.length > max) errors.push(`${name} must be at most ${max} characters`);
    return v || null;
  };
  const voice = {
    subject: text('subject', input.subject, SUBJECT_MAX, true),
    preheader: text('preheader', input.preheader, PREHEADER_MAX_GIVEN, true),
    intro: text('intro', input.intro, INTRO_MAX, false),
  };
  return errors.length ? { errors } : { voice };
}

/** A digest row's voice (its own fields and its newsletter's template). */
export function voiceOf(d: {
  subject_given: string | null;
  preheader: string | null;
  intro: string | null;
  subject_template: string | null;
}): IssueVoice {
  return { subject: d.subject_given, preheader: d.preheader, intro: d.intro, subjectTemplate: d.subject_template };
}

/** A digest's subject: its own, else its newsletter's template, else the built-in one; one header-safe line. */
export function digestSubject(
  voice: IssueVoice,
  issue: { newsletterName: string; titles: string[]; date: Date },
): string {
  if (voice.subject?.trim()) return headerValue(voice.subject).slice(0, SUBJECT_MAX);
  const template =
    voice.subjectTemplate && subjectTemplateError(voice.subjectTemplate) === null
      ? voice.subjectTemplate
      : DEFAULT_SUBJECT_TEMPLATE;
  const render = Handlebars.compile(template, { noEscape: true, strict: false });
  const subject = render({
    newsletter: issue.newsletterName,
    firstTitle: issue.titles[0] ?? '',
    count: issue.titles.length,
    more: Math.max(0, issue.titles.length - 1),
    date: issue.date.toLocaleDateString('en-US', { month: 'long', day: 'numeric', year: 'numeric', timeZone: 'UTC' }),
  });
  return headerValue(subject).slice(0, 200);
}

const markdown = new MarkdownIt('default', { html: false, linkify: true, typographer: false });
// Mail loads nothing from third parties, so no images; raw HTML is shown as text (html: false).
markdown.disable(['image']);
// Only web and mail links survive (markdown-it's own check already refuses javascript:, data:…).
markdown.validateLink = (url: string) => /^(https?:\/\/|mailto:)/i.test(url.trim());
const defaultLinkOpen =
  markdown.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
markdown.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx].attrSet('style', 'color:#0b6e4f;');
  return defaultLinkOpen(tokens, idx, options, env, self);
};

/**
 * The intro as safe HTML for the issue: Markdown rendered without raw HTML or images, links only
 * to http(s) and mailto, paragraphs styled for mail. Empty input gives null.
 */
export function introHtml(intro: string | null | undefined): string | null {
  if (!intro?.trim()) return null;
  return markdown.render(intro.replace(/\0/g, '')).replace(/<p>/g, '<p style="margin:0 0 12px;">').trim();
}
