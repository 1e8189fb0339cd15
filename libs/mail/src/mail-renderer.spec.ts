import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TEMPLATES_DIR } from '#core/paths.js';
import {
  MailRenderer,
  PREHEADER_PAD,
  headerValue,
  preheaderText,
  type MailKind,
  type RenderedMail,
} from './mail-renderer.service.js';
import { listUnsubscribeHeaders } from './list-headers.js';
import { classifySmtpError, isHardBounce } from './smtp-errors.js';

const POSTAL = '1 Example Street, Springfield, IL 62701, USA';
const CONFIRM_URL = 'https://news.example.com/confirm/AbC_dEf-123?utm=a&src=b';
const GUIDE_URL = 'https://news.example.com/guides/back-pain/42.1900000000.abcdefghijklmnopqrstuv';
const UNSUB_URL = 'https://news.example.com/unsubscribe/42.0.ABCDEFGHIJKLMNOPQRSTUV';
const PREVIEW = 'Hidden-preview-text-for-the-inbox-list';

function confirmationVars(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    newsletterName: 'Back & Joints Weekly',
    newsletterNames: 'Back & Joints Weekly',
    tagline: 'One step left',
    preview: PREVIEW,
    name: 'Ann',
    confirmUrl: CONFIRM_URL,
    confirmDays: 7,
    guideTitle: null,
    footerReason: 'You are receiving this one-time message because someone asked to subscribe ann@example.com.',
    postalAddress: POSTAL,
    ...extra,
  };
}

function guideVars(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    newsletterName: 'Back & Joints Weekly',
    tagline: 'Your weekly guide',
    preview: PREVIEW,
    name: 'Ann',
    guideTitle: '7 Natural Ways to Ease Back Pain',
    guideUrl: GUIDE_URL,
    guideDays: 30,
    unsubscribeUrl: UNSUB_URL,
    preferencesUrl: UNSUB_URL,
    footerReason: 'You are receiving this because you subscribed ann@example.com.',
    postalAddress: POSTAL,
    ...extra,
  };
}

/** The transactional kinds this renderer compiles at start (the digest is compiled per issue, elsewhere). */
const templateCount = readdirSync(join(TEMPLATES_DIR, 'mail')).filter(
  (f) => f.endsWith('.mjml') && !['layout.mjml', 'digest.mjml'].includes(f),
).length;

describe('MailRenderer', () => {
  let renderer: MailRenderer;

  beforeAll(async () => {
    renderer = new MailRenderer();
    await renderer.onModuleInit();
  });

  describe('mjml compilation happens once per template', () => {
    it('has one template per mail kind besides the layout', () => {
      expect(templateCount).toBe(2);
    });

    it('increases mjmlCalls by exactly the number of templates on init, and not per render', async () => {
      const before = MailRenderer.mjmlCalls;
      const fresh = new MailRenderer();
      expect(MailRenderer.mjmlCalls).toBe(before);
      await fresh.onModuleInit();
      const afterInit = MailRenderer.mjmlCalls;
      expect(afterInit - before).toBe(templateCount);
      for (let i = 0; i < 100; i++) {
        const kind: MailKind = i % 2 === 0 ? 'confirmation' : 'guide';
        fresh.render(kind, kind === 'guide' ? guideVars({ name: `n${i}` }) : confirmationVars({ name: `n${i}` }));
      }
      expect(MailRenderer.mjmlCalls).toBe(afterInit);
    });
  });

  it('refuses to render before init and refuses unknown kinds', () => {
    expect(() => new MailRenderer().render('guide', guideVars())).toThrow(/not compiled/);
    expect(() => renderer.render('newsletter' as MailKind, {})).toThrow(/not compiled/);
  });

  describe.each<[MailKind, () => Record<string, unknown>]>([
    ['confirmation', () => confirmationVars()],
    ['guide', () => guideVars()],
  ])('%s', (kind, vars) => {
    let mail: RenderedMail;
    beforeAll(() => {
      mail = renderer.render(kind, vars());
    });

    it('renders a full HTML document, a text part and a subject', () => {
      expect(mail.html).toMatch(/^<!doctype html>/i);
      expect(mail.html).toContain('</html>');
      expect(mail.text.length).toBeGreaterThan(100);
      expect(mail.subject.length).toBeGreaterThan(0);
    });

    it('leaves no Handlebars placeholders behind', () => {
      for (const part of [mail.subject, mail.html, mail.text]) {
        expect(part).not.toMatch(/\{\{|\}\}/);
      }
    });

    it('greets by name', () => {
      expect(mail.html).toContain('Hi Ann,');
      expect(mail.text).toContain('Hi Ann,');
    });

    it('shows the postal address in the footer (html and text)', () => {
      expect(mail.html).toContain(POSTAL);
      expect(mail.text).toContain(POSTAL);
    });

    it('puts the subject in the HTML title (escaped)', () => {
      expect(mail.html).toContain(`<title>${mail.subject.replace(/&/g, '&amp;')}</title>`);
    });

    it('keeps the hidden preview in the html but not in the text part', () => {
      expect(mail.html).toContain(PREVIEW);
      expect(mail.text).not.toContain(PREVIEW);
    });

    it('writes its own preheader: hidden without a colour or size trick, padded, first in the body', () => {
      const pre = /<div class="mr-preheader" style="([^"]*)">([^<]*)<\/div>/.exec(mail.html);
      expect(pre?.[1]).toBe('display:none;max-height:0;max-width:0;overflow:hidden;mso-hide:all;');
      expect(pre?.[2].startsWith(`${PREVIEW}${PREHEADER_PAD}`)).toBe(true);
      for (const hidden of mail.html.match(/<[^>]+display:\s*none[^>]*>/g) ?? [])
        expect(hidden).not.toMatch(/color|opacity|font-size/);
      const body = mail.html.slice(mail.html.indexOf('<body'), mail.html.indexOf('<div class="mr-preheader"'));
      expect(body.replace(/<[^>]*>/g, '').trim()).toBe('');
    });

    it('loads nothing from third parties (no web fonts, no stylesheet link, no @import)', () => {
      expect(mail.html).not.toMatch(/fonts\.googleapis|@import|<link\b|Roboto/);
    });

    it('links the privacy policy only when PRIVACY_URL is set, escaped', () => {
      expect(mail.html).not.toContain('Privacy policy');
      const withPolicy = renderer.render(kind, { ...vars(), privacyUrl: 'https://p.example/privacy?a=1&b="2"' });
      expect(withPolicy.html).toContain('<a href="https://p.example/privacy?a&#x3D;1&amp;b&#x3D;&quot;2&quot;"');
      expect(withPolicy.text).toContain('Privacy policy [https://p.example/privacy?a=1&b="2"]');
    });
  });

  describe('confirmation', () => {
    it('has the documented subject', () => {
      expect(renderer.render('confirmation', confirmationVars()).subject).toBe(
        'Please confirm your subscription to Back & Joints Weekly',
      );
    });

    it('links the confirmation URL in html (escaped) and text (verbatim)', () => {
      const mail = renderer.render('confirmation', confirmationVars());
      expect(mail.html).toContain(`href="${CONFIRM_URL.replace(/&/g, '&amp;').replace(/=/g, '&#x3D;')}"`);
      expect(mail.text).toContain(CONFIRM_URL);
      expect(mail.text).toContain('7 days');
    });

    it('renders without an unsubscribe link when unsubscribeUrl is absent', () => {
      const mail = renderer.render('confirmation', confirmationVars());
      expect(mail.html).not.toMatch(/unsubscribe/i);
      expect(mail.text).not.toMatch(/unsubscribe/i);
      expect(mail.html).not.toMatch(/Manage your preferences/);
      expect(mail.html).toContain(POSTAL);
    });

    it('mentions the guide when there is one', () => {
      const withGuide = renderer.render('confirmation', confirmationVars({ guideTitle: 'The Back Book' }));
      expect(withGuide.text).toContain('FREE Guide: The Back Book');
      expect(withGuide.html).toContain('<em>The Back Book</em>');
    });

    it('does not promise a guide when there is none (guideTitle null)', () => {
      // templates/mail/confirmation.mjml wraps this sentence in {{#if guideTitle}}…{{/if}}.
      const without = renderer.render('confirmation', confirmationVars({ guideTitle: null }));
      expect(without.html).not.toContain('FREE Guide');
      expect(without.text).not.toContain('FREE Guide');
    });

    it('says "Hello," without a name', () => {
      const mail = renderer.render('confirmation', confirmationVars({ name: null }));
      expect(mail.text).toContain('Hello,');
      expect(mail.text).not.toContain('Hi ');
    });
  });

  describe('guide', () => {
    it('has the documented subject', () => {
      expect(renderer.render('guide', guideVars()).subject).toBe('Your free guide: 7 Natural Ways to Ease Back Pain');
    });

    it('links the guide and shows the unsubscribe URL in the footer (html and text)', () => {
      const mail = renderer.render('guide', guideVars());
      expect(mail.html).toContain(`href="${GUIDE_URL}"`);
      expect(mail.html).toContain(`href="${UNSUB_URL}"`);
      expect(mail.html).toContain('Unsubscribe');
      expect(mail.text).toContain(GUIDE_URL);
      expect(mail.text).toContain(`Unsubscribe [${UNSUB_URL}?action=unsubscribe]`);
      expect(mail.text).toContain('30 days');
    });
  });

  describe('escaping', () => {
    const XSS = '<script>alert(1)</script>';

    it('HTML-escapes values in the html part', () => {
      const mail = renderer.render('confirmation', confirmationVars({ name: XSS }));
      expect(mail.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(mail.html).not.toContain(XSS);
      expect(mail.html).not.toContain('<script');
    });

    it('escapes values placed in attributes', () => {
      const evil = 'https://x.example/c/"onmouseover="alert(1)';
      const mail = renderer.render('confirmation', confirmationVars({ confirmUrl: evil }));
      expect(mail.html).not.toContain('"onmouseover="');
      expect(mail.html).toContain('&quot;onmouseover&#x3D;&quot;');
    });

    it('escapes values in the guide footer and title too', () => {
      const mail = renderer.render('guide', guideVars({ guideTitle: XSS, postalAddress: `${XSS} Street` }));
      expect(mail.html).not.toContain(XSS);
      expect(mail.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; Street');
    });

    it('does not HTML-escape the text part', () => {
      const mail = renderer.render('confirmation', confirmationVars({ name: 'Tom & <Jerry>' }));
      expect(mail.text).toContain('Hi Tom & <Jerry>,');
      expect(mail.text).toContain('Back & Joints Weekly');
      expect(mail.text).toContain('?utm=a&src=b');
      expect(mail.text).not.toMatch(/&amp;|&lt;|&gt;|&#x3D;|&quot;/);
    });

    it('does not HTML-escape the subject', () => {
      const mail = renderer.render('guide', guideVars({ guideTitle: 'Q&A <2024>' }));
      expect(mail.subject).toBe('Your free guide: Q&A <2024>');
    });

    it('does not evaluate Handlebars syntax inside values', () => {
      const mail = renderer.render('guide', guideVars({ name: '{{postalAddress}}' }));
      expect(mail.text).toContain('Hi {{postalAddress}},');
    });
  });

  describe('subject header safety', () => {
    it.each<[string, string]>([
      ['CRLF', 'Title\r\nBcc: victim@example.com'],
      ['LF', 'Title\nBcc: victim@example.com'],
      ['CR', 'Title\rBcc: victim@example.com'],
      ['tab and NUL', 'Title\t\0Bcc: victim@example.com'],
      ['trailing CRLF', 'Title\r\n'],
    ])('never contains CR/LF (%s in a value)', (_label, title) => {
      const guide = renderer.render('guide', guideVars({ guideTitle: title }));
      expect(guide.subject).not.toMatch(/[\r\n\0]/);
      expect(guide.subject.startsWith('Your free guide: Title')).toBe(true);
      const confirmation = renderer.render('confirmation', confirmationVars({ newsletterNames: title }));
      expect(confirmation.subject).not.toMatch(/[\r\n\0]/);
    });

    it('replaces header-splitting runs with one space and trims', () => {
      expect(renderer.render('guide', guideVars({ guideTitle: 'A\r\n\r\nB' })).subject).toBe('Your free guide: A B');
      expect(renderer.render('guide', guideVars({ guideTitle: 'A\r\n' })).subject).toBe('Your free guide: A');
    });
  });
});

describe('preheaderText', () => {
  it('keeps a short preheader as it is, whitespace collapsed', () => {
    expect(preheaderText('  Confirm your\n address. ')).toBe('Confirm your address.');
  });

  it('cuts a long one at a word boundary, within 150 characters', () => {
    const titles =
      'All About Upper Back Pain · 7 Possible Causes of Pain Under Your Shoulder Blade · 5 Exercises for Upper and Middle Back Pain · Upper Back Pain';
    const cut = preheaderText(`${titles} from Intercostal Muscle Strain`);
    expect(cut.length).toBeLessThanOrEqual(150);
    expect(cut).toBe(`${titles} from…`);
    expect(cut.endsWith('…')).toBe(true);
    expect(`${titles} from Intercostal Muscle Strain`.startsWith(cut.slice(0, -1))).toBe(true);
    expect(`${titles} from Intercostal Muscle Strain`[cut.length - 1]).toBe(' ');
  });

  it('cuts one long word where it must', () => {
    expect(preheaderText('x'.repeat(400))).toBe(`${'x'.repeat(149)}…`);
  });

  it('pads on lines a wire HTML can carry', () => {
    for (const line of PREHEADER_PAD.split('\n')) expect(line.length).toBeLessThan(400);
  });
});

describe('listUnsubscribeHeaders', () => {
  it('offers the one-click https URL alone (no mailto nobody reads), with List-Unsubscribe-Post', () => {
    expect(listUnsubscribeHeaders('https://n.example/unsubscribe/1.0.abc')).toEqual({
      'List-Unsubscribe': { prepared: true, value: '<https://n.example/unsubscribe/1.0.abc>' },
      'List-Unsubscribe-Post': { prepared: true, value: 'List-Unsubscribe=One-Click' },
    });
  });
});

describe('headerValue', () => {
  it.each<[string, string]>([
    ['plain', 'plain'],
    ['a\r\nb', 'a b'],
    ['a\nb\rc', 'a b c'],
    ['a\t\0b', 'a b'],
    ['  padded\r\n', 'padded'],
    ['\r\n', ''],
  ])('%j → %j', (input, expected) => {
    expect(headerValue(input)).toBe(expected);
  });
});

describe('classifySmtpError', () => {
  it.each<[string, unknown]>([
    ['550 user unknown', { responseCode: 550, response: '550 5.1.1 <x@y>: user unknown' }],
    ['554 policy', { responseCode: 554, response: '554 5.7.1 Message rejected as spam' }],
    ['552 mailbox full', { responseCode: 552, response: '552 5.2.2 Mailbox full' }],
    ['599', { responseCode: 599 }],
  ])('%s is permanent', (_label, err) => {
    expect(classifySmtpError(err)).toBe('permanent');
  });

  it.each<[string, unknown]>([
    ['421 service not available', { responseCode: 421, response: '421 4.3.2 Service not available, closing channel' }],
    ['451 greylisted', { responseCode: 451, response: '451 4.7.1 Greylisted, please try again later' }],
    ['450 mailbox busy', { responseCode: 450, response: '450 4.2.1 Mailbox busy' }],
    ['connection refused (no code)', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET' })],
    ['timeout (no code)', { code: 'ETIMEDOUT', message: 'Connection timeout' }],
    ['a plain Error', new Error('something broke')],
    ['an empty object', {}],
    ['null', null],
    ['undefined', undefined],
    ['a string', '550 5.1.1 user unknown'],
    ['a string responseCode', { responseCode: '550' }],
    ['600', { responseCode: 600 }],
    ['250', { responseCode: 250 }],
  ])('%s is transient', (_label, err) => {
    expect(classifySmtpError(err)).toBe('transient');
  });
});

describe('isHardBounce', () => {
  it.each<[string, unknown]>([
    ['550 5.1.1 user unknown', { responseCode: 550, response: '550 5.1.1 <x@y>: user unknown' }],
    [
      '550-5.1.1 multiline (Gmail)',
      { responseCode: 550, response: '550-5.1.1 The email account that you tried to reach does not exist.' },
    ],
    ['553 5.1.3 bad address syntax', { responseCode: 553, response: '553 5.1.3 Bad recipient address syntax' }],
    ['550 5.1.10 null MX', { responseCode: 550, response: '550 5.1.10 RESOLVER.ADR.RecipientNotFound' }],
    [
      '5.1.1 only in the nodemailer message',
      Object.assign(new Error("Can't send mail - all recipients were rejected: 550 5.1.1 <x@y>: user unknown"), {
        responseCode: 550,
      }),
    ],
  ])('%s is a hard bounce', (_label, err) => {
    expect(isHardBounce(err)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['554 5.7.1 policy rejection', { responseCode: 554, response: '554 5.7.1 Message rejected as spam' }],
    ['552 5.2.2 mailbox full', { responseCode: 552, response: '552 5.2.2 Mailbox full' }],
    ['550 without enhanced status', { responseCode: 550, response: '550 Requested action not taken' }],
    ['450 4.1.1 (transient)', { responseCode: 450, response: '450 4.1.1 <x@y>: Recipient address rejected' }],
    ['421 with 5.1.1 text (transient code)', { responseCode: 421, response: '421 try later 5.1.1' }],
    ['no code with 5.1.1 text', { response: '550 5.1.1 user unknown' }],
    ['null', null],
    ['undefined', undefined],
    ['5.1.1 embedded in a longer number', { responseCode: 550, response: '550 5.7.1 ref 15.1.123' }],
  ])('%s is not a hard bounce', (_label, err) => {
    expect(isHardBounce(err)).toBe(false);
  });

  it('a 5.7.1 policy rejection is not a hard bounce even when the text contains an IP like 10.5.1.20', () => {
    // Blocklist rejections quote the client IP; only the enhanced status code after the reply code counts.
    const err = {
      responseCode: 554,
      response: '554 5.7.1 Service unavailable; Client host [10.5.1.20] blocked using zen.spamhaus.org',
    };
    expect(classifySmtpError(err)).toBe('permanent');
    expect(isHardBounce(err)).toBe(false);
  });
});
