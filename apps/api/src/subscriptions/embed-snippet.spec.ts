import { CONSENT_TEXT } from '#subscriptions/subscriptions.service.js';
import { publisherName } from '../pages/pages.service.js';
import { embedSnippet } from './embed-snippet.js';

describe('embedSnippet', () => {
  const guideTitle = 'Natural Back Pain Relief: 16 Choices for Lasting Comfort';

  it('is a plain form posting to the public subscribe endpoint for one newsletter, with the honeypot', () => {
    const html = embedSnippet({ publicUrl: 'https://news.example', newsletter: 'spine-health', guideTitle });
    expect(html).toContain('<form method="post" action="https://news.example/v1/subscriptions">');
    expect(html).toContain('<input type="hidden" name="newsletters" value="spine-health">');
    expect(html).toContain('<label for="mr-email">Email address</label>');
    expect(html).toContain('name="website"');
    expect(html).not.toMatch(/<script|<link|src=|@import|url\(/);
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
    expect(html).not.toContain('<script>');
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
