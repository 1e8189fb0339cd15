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

  /** Per recipient: escaped substitution only. Compiled templates are cached per issue. */
  personalize(key: string, issue: IssueTemplates, vars: PersonalVars): { subject: string; html: string; text: string } {
    let c = this.cache.get(key);
    if (!c) {
      c = { html: Handlebars.compile(issue.html), text: Handlebars.compile(issue.text, { noEscape: true }) };
      if (this.cache.size > 50) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, c);
    }
    return { subject: issue.subject, html: c.html(vars), text: c.text(vars) };
  }
}
