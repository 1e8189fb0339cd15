import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import Handlebars from 'handlebars';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { TEMPLATES_DIR } from '#core/paths.js';
import { TIMEZONE_FIELD, TIMEZONE_SCRIPT } from '../subscriptions/embed-snippet.js';

/** The CSP source allowing the time-zone field's inline script, and nothing else. */
const TIMEZONE_SCRIPT_SOURCE = `'sha256-${createHash('sha256').update(TIMEZONE_SCRIPT, 'utf8').digest('base64')}'`;

/**
 * The publisher's name for pages that concern no single newsletter: the first part of the postal
 * address printed in every footer, without a legal suffix ("Veritas Health LLC, …" → "Veritas Health").
 */
export function publisherName(postalAddress: string): string {
  const first = postalAddress.split(',')[0]?.trim() ?? '';
  const name = first
    .replace(/,?\s+(LLC|L\.L\.C\.|Inc\.?|Ltd\.?|Limited|GmbH|S\.A\.|SAS|BV|B\.V\.|plc|Co\.?)$/i, '')
    .trim();
  return name && name.length <= 60 && !/\d/.test(name) ? name : 'Newsletters';
}

export interface PageOptions {
  /** Newsletter names the page is about: one name becomes the page's brand, else the publisher's. */
  newsletters?: string[];
  /** A wider content column (the embed snippet page). */
  wide?: boolean;
}

/**
 * Newsletter names for a sentence ("A, B and C"), each kept on one line: names such as
 * "Arthritis-health" must not break at their hyphen on a phone.
 */
export function nameList(names: string[]): { name: string; sep: string }[] {
  return names.map((name, i) => ({ name, sep: i === names.length - 1 ? '' : i === names.length - 2 ? ' and ' : ', ' }));
}

/** Reader-facing HTML pages: Handlebars (escaped) inside one shared layout, compiled once. */
@Injectable()
export class PagesService implements OnModuleInit {
  // Its own Handlebars instance: the pages' partials stay apart from the mail templates' helpers.
  private readonly hbs = Handlebars.create();
  private layout!: Handlebars.TemplateDelegate;
  private readonly pages = new Map<string, Handlebars.TemplateDelegate>();
  readonly publisher: string;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.publisher = publisherName(config.postalAddress);
  }

  get publicUrl(): string {
    return this.config.publicUrl;
  }

  /** PRIVACY_URL, linked from every reader page and signup form when set. */
  get privacyUrl(): string | undefined {
    return this.config.privacyUrl;
  }

  /**
   * Security headers for a reader page: a Content-Security-Policy that allows only the inline
   * styles and forms posting back here (nothing from elsewhere, and no script but the time-zone
   * field's, by its hash, on the pages that carry it: `timezoneField`). Pages behind a token
   * (confirm, preference centre) may not be framed, so no other site can overlay their buttons;
   * the signup page may be, for publishers who frame it.
   */
  headers(opts: { frameable?: boolean; timezoneField?: boolean } = {}): Record<string, string> {
    const origin = new URL(this.config.publicUrl).origin;
    return {
      'content-security-policy': [
        "default-src 'none'",
        ...(opts.timezoneField ? [`script-src ${TIMEZONE_SCRIPT_SOURCE}`] : []),
        "style-src 'unsafe-inline'",
        'img-src data:',
        `form-action 'self' ${origin}`,
        "base-uri 'none'",
        `frame-ancestors ${opts.frameable ? '*' : "'none'"}`,
      ].join('; '),
      'x-content-type-options': 'nosniff',
      ...(opts.frameable ? {} : { 'x-frame-options': 'DENY' }),
    };
  }

  async onModuleInit(): Promise<void> {
    // `{{> timezone-field}}`: the embed snippet's field, so the page, the snippet and the CSP hash agree.
    this.hbs.registerPartial('timezone-field', `${TIMEZONE_FIELD}\n`);
    const dir = join(TEMPLATES_DIR, 'pages');
    for (const file of await readdir(dir)) {
      if (!file.endsWith('.hbs')) continue;
      const source = await readFile(join(dir, file), 'utf8');
      // `_name.hbs` is a partial (`{{> name}}`), shared by several pages.
      if (file.startsWith('_')) {
        this.hbs.registerPartial(file.slice(1, -4), source);
        continue;
      }
      const tpl = this.hbs.compile(source);
      if (file === 'layout.hbs') this.layout = tpl;
      else this.pages.set(file.slice(0, -4), tpl);
    }
  }

  /** The header and footer name: the newsletter concerned, or the publisher when there is none or several. */
  brandFor(newsletters: string[] | undefined): string {
    const unique = [...new Set(newsletters ?? [])];
    return unique.length === 1 && unique[0] ? unique[0] : this.publisher;
  }

  render(page: string, title: string, vars: Record<string, unknown> = {}, opts: PageOptions = {}): string {
    const tpl = this.pages.get(page);
    if (!tpl) throw new Error(`Unknown page ${page}`);
    const brand = this.brandFor(opts.newsletters);
    const common = {
      publicUrl: this.config.publicUrl,
      postalAddress: this.config.postalAddress,
      brand,
      brandInitial: brand.charAt(0).toUpperCase(),
      publisher: this.publisher,
      privacyUrl: this.config.privacyUrl ?? null,
    };
    const body = tpl({ ...common, ...vars });
    return this.layout({ ...common, title, body, wide: opts.wide === true });
  }
}
