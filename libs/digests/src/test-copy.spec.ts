import type { AppConfig } from '#config/config.js';
import { DigestRenderer, hasTestCopySlots, testCopyOf, type IssueArticle } from './digest-renderer.service.js';

const ARTICLES: IssueArticle[] = [
  {
    url: 'https://www.spine-health.example/a',
    title: 'All About Upper Back Pain',
    summary: 'Muscle strain, posture and a few medical conditions.',
    imageUrl: null,
    topics: ['Upper Back Pain'],
  },
];
const VARS = {
  greeting: 'Hello,',
  email: 'qa@example.com',
  unsubscribeUrl: '',
  preferencesUrl: '',
  clickReader: '0.x',
};

describe('digest issues: preheader, privacy link and test copies', () => {
  const renderer = (privacyUrl?: string) => new DigestRenderer({ postalAddress: '1 Main St', privacyUrl } as AppConfig);

  it('renders the issue with its own preheader, no web fonts, and the privacy link when set', async () => {
    const r = renderer('https://www.spine-health.example/privacy');
    await r.onModuleInit();
    const issue = await r.renderIssue('Spine-health', ARTICLES, new Date('2026-12-08T09:00:00Z'));
    expect(issue.html).toMatch(/<div class="mr-preheader" style="display:none;[^"]*">All About Upper Back Pain&#847;/);
    expect(issue.html).not.toMatch(/fonts\.googleapis|@import|<link\b|color:#ffffff;line-height:1px/);
    expect(issue.html).toContain('<a href="https://www.spine-health.example/privacy"');
    expect(issue.text).toContain('Privacy policy [https://www.spine-health.example/privacy]');
    expect(hasTestCopySlots(issue.html)).toBe(true);
  });

  it('turns an issue into a test copy: banner first, footer without unsubscribe, values escaped', async () => {
    const r = renderer();
    await r.onModuleInit();
    const issue = await r.renderIssue('Spine-health', ARTICLES, new Date('2026-12-08T09:00:00Z'));
    expect(issue.html).not.toContain('Privacy policy');
    const copy = testCopyOf(issue, 'Ann <ann@example.com> {{email}}');
    expect(copy.subject).toBe('[Test] Spine-health: All About Upper Back Pain');
    const mail = r.personalize('test-copy-spec', copy, { ...VARS, email: 'q"a@example.com' });
    expect(mail.html).not.toMatch(/\/unsubscribe|Manage your preferences|>Unsubscribe</);
    expect(mail.html).toMatch(/<\/div>\n<div class="mr-test-banner"[^>]*><p[^>]*><strong>TEST COPY<\/strong>/);
    expect(mail.html).toContain('sent to q&quot;a@example.com by Ann &lt;ann@example.com&gt; {\u200b{email}\u200b}');
    expect(mail.text.trimStart()).toMatch(/^TEST COPY · This is a test copy of this digest\./);
    expect(mail.text).toContain('This is a test copy sent to q"a@example.com by Ann <ann@example.com>');
    expect(mail.text).not.toContain('You are receiving this because you subscribed');
  });

  it('refuses an issue without the slots (the sender renders such an issue anew)', () => {
    expect(() => testCopyOf({ subject: 's', html: '<p>old</p>', text: 'old' }, 'x')).toThrow(/test-copy slots/);
  });
});
