import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import Handlebars from 'handlebars';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { TEMPLATES_DIR } from '#core/paths.js';
import type { StaffPrincipal } from '#staff/staff-sessions.service.js';
import { consoleCsp } from './console-security.js';

/** The console's sections, in menu order. `adminOnly` ones are hidden from marketers. */
export const CONSOLE_SECTIONS = [
  { id: 'overview', label: 'Overview', href: '/admin' },
  { id: 'newsletters', label: 'Newsletters', href: '/admin/newsletters' },
  { id: 'articles', label: 'Articles', href: '/admin/articles' },
  { id: 'digests', label: 'Digests', href: '/admin/digests' },
  { id: 'subscribers', label: 'Subscribers', href: '/admin/subscribers' },
  { id: 'suppressions', label: 'Suppressions', href: '/admin/suppressions' },
  { id: 'dkim', label: 'DKIM', href: '/admin/dkim' },
  { id: 'queues', label: 'Queues', href: '/admin/queues' },
  { id: 'webhooks', label: 'Webhooks', href: '/admin/webhooks', adminOnly: true },
  { id: 'users', label: 'Users', href: '/admin/users', adminOnly: true },
] as const;

export type ConsoleSection = (typeof CONSOLE_SECTIONS)[number]['id'];

export interface ConsoleView {
  /** The page's <title> and, unless the template says otherwise, its heading. */
  title: string;
  /** The signed-in user; absent on the sign-in page (no menu then). */
  staff?: StaffPrincipal | null;
  /** Which menu entry is the current page. */
  section?: ConsoleSection;
}

/**
 * The CSP hash sources of a template's inline scripts. They must be static text (no `{{`) so that
 * what is served is exactly what was hashed; a script with a `src` would need its own CSP source.
 */
export function inlineScriptHashes(file: string, source: string): string[] {
  const hashes: string[] = [];
  for (const m of source.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
    const [, attrs, body] = m;
    if (/\bsrc\s*=/i.test(attrs) || body.includes('{{')) {
      throw new Error(`${file}: console scripts must be inline and static (the CSP allows them by hash)`);
    }
    hashes.push(`sha256-${createHash('sha256').update(body, 'utf8').digest('base64')}`);
  }
  return hashes;
}

/** "2026-05-05 09:00 America/Chicago": the console's one way to write a time, with its zone. */
export function zonedTime(d: Date, timeZone: string): string {
  try {
    const parts = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).formatToParts(d);
    const get = (t: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === t)?.value ?? '';
    return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')} ${timeZone}`;
  } catch {
    return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  }
}

/** Console pages: Handlebars (escaped) in templates/admin, inside the console layout, compiled once. */
@Injectable()
export class ConsolePagesService implements OnModuleInit {
  private readonly hbs = Handlebars.create();
  private layout!: Handlebars.TemplateDelegate;
  private readonly pages = new Map<string, Handlebars.TemplateDelegate>();
  private csp = consoleCsp([]);

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.hbs.registerHelper('eq', (a: unknown, b: unknown) => a === b);
    this.hbs.registerHelper('date', (d: unknown) =>
      d instanceof Date ? d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : '',
    );
    // `{{zoned time zone}}`: a time in a newsletter's schedule zone, the zone named; UTC when it has none.
    this.hbs.registerHelper('zoned', (d: unknown, zone: unknown) =>
      d instanceof Date ? zonedTime(d, typeof zone === 'string' && zone ? zone : 'UTC') : '',
    );
    this.hbs.registerHelper('day', (d: unknown) => (d instanceof Date ? d.toISOString().slice(0, 10) : ''));
    this.hbs.registerHelper('iso', (d: unknown) => (d instanceof Date ? d.toISOString() : ''));
    this.hbs.registerHelper('number', (n: unknown) => (typeof n === 'number' ? n.toLocaleString('en-US') : n));
  }

  async onModuleInit(): Promise<void> {
    const dir = join(TEMPLATES_DIR, 'admin');
    const hashes = new Set<string>();
    for (const file of await readdir(dir)) {
      if (!file.endsWith('.hbs')) continue;
      const source = await readFile(join(dir, file), 'utf8');
      for (const h of inlineScriptHashes(file, source)) hashes.add(h);
      if (file.startsWith('_')) {
        this.hbs.registerPartial(file.slice(1, -4), source);
        continue;
      }
      const tpl = this.hbs.compile(source, { strict: false });
      if (file === 'layout.hbs') this.layout = tpl;
      else this.pages.set(file.slice(0, -4), tpl);
    }
    this.csp = consoleCsp([...hashes].sort());
  }

  /** The Content-Security-Policy of every console page: its scripts allowed by hash. */
  get contentSecurityPolicy(): string {
    return this.csp;
  }

  render(page: string, view: ConsoleView, vars: Record<string, unknown> = {}): string {
    const tpl = this.pages.get(page);
    if (!tpl) throw new Error(`Unknown console page ${page}`);
    const staff = view.staff ?? null;
    const nav = staff
      ? CONSOLE_SECTIONS.filter((s) => !('adminOnly' in s) || staff.role === 'admin').map((s) => ({
          ...s,
          current: s.id === view.section,
        }))
      : [];
    const common = {
      title: view.title,
      staff,
      isAdmin: staff?.role === 'admin',
      csrf: staff?.csrfToken ?? '',
      publicUrl: this.config.publicUrl,
    };
    const body = tpl({ ...common, ...vars });
    return this.layout({ ...common, nav, body });
  }
}
