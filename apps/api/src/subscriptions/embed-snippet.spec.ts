import { CONSENT_TEXT } from '#subscriptions/subscriptions.service.js';
import { createHash } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import { loadConfig } from '#config/config.js';
import { PagesService, publisherName } from '../pages/pages.service.js';
import { embedSnippet, TIMEZONE_SCRIPT } from './embed-snippet.js';

/** Runs the time-zone script against a stand-in for its hidden field, as a browser would. */
function runTimezoneScript(zone: string | undefined, field = { name: 'timezone', value: '', disabled: true }) {
  const Intl = { DateTimeFormat: () => ({ resolvedOptions: () => ({ timeZone: zone }) }) };
  const window: Record<string, unknown> = { Intl, document: { currentScript: { previousElementSibling: field } } };
  runInNewContext(TIMEZONE_SCRIPT, window);
  return { field, globals: Object.keys(window).sort() };
}

describe('embedSnippet', () => {
  const guideTitle = 'Natural Back Pain Relief: 16 Choices for Lasting Comfort';

  it('is a plain form posting to the public subscribe endpoint for one newsletter, with the honeypot', () => {
    const html = embedSnippet({ publicUrl: 'https://news.example', newsletter: 'spine-health', guideTitle });
    expect(html).toContain('<form method="post" action="https://news.example/v1/subscriptions">');
    expect(html).toContain('<input type="hidden" name="newsletters" value="spine-health">');
    expect(html).toContain('<label for="mr-email">Email address</label>');
    expect(html).toContain('name="website"');
    expect(html).not.toMatch(/<link|src=|@import|url\(/);
  });

  it('carries a disabled hidden timezone field and, right after it, its one inline script', () => {
    const html = embedSnippet({ publicUrl: 'https://news.example', newsletter: 'spine-health', guideTitle });
    const form = html.slice(html.indexOf('<form'), html.indexOf('</form>'));
    expect(form).toContain(`<input type="hidden" name="timezone" disabled><script>${TIMEZONE_SCRIPT}</script>`);
    expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script>']);
  });

  it('its script fills the field from Intl and enables it, and leaves it disabled when the zone is unknown', () => {
    expect(runTimezoneScript('Europe/Berlin')).toEqual({
      field: { name: 'timezone', value: 'Europe/Berlin', disabled: false },
      globals: ['Intl', 'document'],
    });
    for (const zone of [undefined, '', 'Etc/Unknown']) {
      expect(runTimezoneScript(zone).field).toEqual({ name: 'timezone', value: '', disabled: true });
    }
    // Never another element than its field, and never an error on the publisher's page.
    expect(runTimezoneScript('Europe/Berlin', { name: 'email', value: '', disabled: false }).field.value).toBe('');
    expect(() => runInNewContext(TIMEZONE_SCRIPT, { document: {} })).not.toThrow();
  });

  it('is the script the reader pages allow by hash (the embed page previews it)', () => {
    const config = loadConfig({
      NODE_ENV: 'development',
      DATABASE_URL: 'postgres://user:pass@localhost:5432/mailroom',
      SMTP_URL: 'smtp://localhost:1025',
    });
    const pages = new PagesService(config);
    const hash = createHash('sha256').update(TIMEZONE_SCRIPT, 'utf8').digest('base64');
    const directives = pages.headers({ timezoneField: true })['content-security-policy'].split('; ');
    expect(directives.filter((d) => d.startsWith('script-src'))).toEqual([`script-src 'sha256-${hash}'`]);
    expect(directives).toContain("default-src 'none'");
    // Pages without the field allow no script at all.
    expect(pages.headers()['content-security-policy']).not.toContain('script-src');
  });

  it('shows exactly the consent text stored with each signup', () => {
    const text = embedSnippet({ publicUrl: 'https://news.example', newsletter: 'spine-health', guideTitle })
      .replace(/<style>[\s\S]*<\/style>/, '')
      .replace(/<!--[\s\S]*?-->/, '')
      .replace(/<form[\s\S]*<\/form>/, ' ')
      .replace(/<[^>]+>/g, '')
      .replace(/\s+/g, ' ')
      .trim();
    expect(text).toBe(CONSENT_TEXT);
  });

  it('offers no guide for a newsletter without one, and links the privacy policy when there is one', () => {
    const html = embedSnippet({
      publicUrl: 'https://news.example',
      newsletter: 'arthritis-health',
      guideTitle: null,
      privacyUrl: 'https://publisher.example/privacy?x=1&y=2',
    });
    expect(html).not.toMatch(/FREE|Guide/);
    expect(html).toContain('<strong>Subscribe to our weekly newsletter</strong>.</p>');
    expect(html).toContain('<a href="https://publisher.example/privacy?x=1&#38;y=2">Privacy policy</a>');
  });

  it('escapes what it is given', () => {
    const html = embedSnippet({ publicUrl: 'https://x.example/"><script>', guideTitle: '<b>Guide</b> & more' });
    expect(html).not.toContain('"><script>');
    expect(html).toContain('https://x.example/&#34;&#62;&#60;script&#62;/v1/subscriptions');
    expect(html).toContain('&#60;b&#62;Guide&#60;/b&#62; &#38; more');
    expect(html).not.toContain('name="newsletters"');
  });
});

describe('publisherName', () => {
  it('takes the company from the postal address, without its legal suffix', () => {
    expect(publisherName('Veritas Health LLC, 580 N Bank Ln, Lake Forest, IL, 60045, USA')).toBe('Veritas Health');
    expect(publisherName('Acme Media Inc., 1 Main St')).toBe('Acme Media');
    expect(publisherName('12 Main Street, Springfield')).toBe('Newsletters');
  });
});
