import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { simpleParser } from 'mailparser';
import Handlebars from 'handlebars';
import { TextSplice, WireSplice, hasOverlongLine, htmlPart, wireHtml } from './digest-renderer.service.js';
import { listIdValue } from './digest-sender.service.js';

describe('wire form of the digest HTML', () => {
  it('turns every non-ASCII character into a numeric reference and ends lines with CRLF', () => {
    expect(wireHtml('<p>Zoë “quoted” – 😀</p>\n<p>ok</p>\r\n')).toBe(
      '<p>Zo&#235; &#8220;quoted&#8221; &#8211; &#128512;</p>\r\n<p>ok</p>\r\n',
    );
  });

  it('is a ready 7bit part when ASCII and lines fit; personal non-ASCII values are converted too', () => {
    const part = htmlPart('<p>Hi Zoë,</p>\r\n');
    expect(part).toEqual({
      raw: 'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n<p>Hi Zo&#235;,</p>\r\n',
    });
  });

  it('falls back to text for nodemailer to encode when a line is longer than 998 characters', () => {
    const long = `<p>${'x'.repeat(1000)}</p>`;
    expect(htmlPart(long)).toBe(long);
  });

  it('finds a line over 998 characters, not counting CRLF', () => {
    const line = (n: number) => 'y'.repeat(n);
    expect(hasOverlongLine(`${line(998)}\r\n${line(998)}\r\n${line(998)}`)).toBe(false);
    expect(hasOverlongLine(`a\r\n${line(999)}\r\nb`)).toBe(true);
    expect(hasOverlongLine(`a\n${line(999)}`)).toBe(true);
    expect(hasOverlongLine('')).toBe(false);
  });

  it('survives MIME: one text/html 7bit part, the rest of the message intact', async () => {
    const raw = await new MailComposer({
      from: 'a@example.com',
      to: 'b@example.com',
      subject: 'Zoë’s digest',
      text: 'Hi Zoë,\nRead more',
      textEncoding: 'base64',
      html: htmlPart(wireHtml('<p>Hi Zoë,</p>\n<p>Read more</p>\n')),
    })
      .compile()
      .build();
    expect(raw.toString()).toMatch(
      /Content-Type: text\/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n<p>Hi Zo&#235;,<\/p>\r\n/,
    );
    const parsed = await simpleParser(raw);
    expect(parsed.subject).toBe('Zoë’s digest');
    expect(parsed.text).toContain('Hi Zoë,');
    expect(parsed.html).toContain('<p>Hi Zo&#235;,</p>');
  });
});

describe('List-ID for a prebuilt digest message', () => {
  it('quotes an ASCII name and encodes any other, never breaking the <id>', async () => {
    expect(listIdValue('Spine-health', 'spine-health.example')).toBe('"Spine-health" <spine-health.example>');
    expect(listIdValue('Say "hi" \\', 'a.example')).toBe('"Say \\"hi\\" \\\\" <a.example>');
    const raw = await new MailComposer({
      from: 'a@example.com',
      to: 'b@example.com',
      text: 'x',
      headers: { 'List-ID': { prepared: true, value: listIdValue('Zoë\r\nBcc: x@evil.test', 'z.example') } },
    })
      .compile()
      .build();
    const parsed = await simpleParser(raw);
    expect(parsed.headers.get('bcc')).toBeUndefined();
    expect(String(raw)).toMatch(/^List-ID: =\?UTF-8\?Q\?[^\r\n]+\?= <z\.example>\r$/m);
  });
});

describe('spliced wire HTML (per-recipient values between per-issue byte segments)', () => {
  const template = wireHtml(
    '<p>{{greeting}}</p>\n<p>Zoë’s pick · <a href="{{unsubscribeUrl}}">unsubscribe</a> or <a href="{{preferencesUrl}}">preferences</a></p>\n<p>{{email}}</p>\n',
  );
  const expected = (vars: Parameters<WireSplice['render']>[0]) => {
    const part = htmlPart(Handlebars.compile(template)(vars));
    return typeof part === 'string' ? null : part.raw.split('\r\n\r\n').slice(1).join('\r\n\r\n');
  };
  const joined = (s: { parts: readonly Buffer[]; values: string[] }) =>
    Buffer.concat(
      s.values.flatMap((v, i) => [s.parts[i], Buffer.from(v, 'latin1')]).concat(s.parts[s.values.length]),
    ).toString('latin1');

  it.each([
    ['a plain name', 'Hi Sam,'],
    ['markup and quotes in a name', 'Hi <b>"Sam" & \'Co\'</b>,'],
    ['a non-ASCII name', 'Hi Zoë 山田 😀,'],
  ])('gives the same bytes as the Handlebars wire template, for %s', (_label, greeting) => {
    const splice = WireSplice.of(template)!;
    const vars = {
      greeting,
      email: 'sam@example.com',
      unsubscribeUrl: 'https://x.example/u/t?a=1&b=2',
      preferencesUrl: 'https://x.example/p',
      clickReader: '7.AAAAAAAAAAAAAAAA',
    };
    const out = splice.render(vars)!;
    expect(joined(out)).toBe(expected(vars));
  });

  it('declines a value that would push its line past 998 characters, and templates with other placeholders', () => {
    const splice = WireSplice.of(template)!;
    const long = {
      greeting: 'x'.repeat(995),
      email: 'a@b.example',
      unsubscribeUrl: 'u',
      preferencesUrl: 'p',
      clickReader: '0',
    };
    // <p>…</p> with 995 characters inside is 1 002 on its line; 991 makes exactly 998.
    expect(splice.render(long)).toBeNull();
    expect(splice.render({ ...long, greeting: 'x'.repeat(991) })).not.toBeNull();
    expect(WireSplice.of('<p>{{greeting}} {{#if x}}y{{/if}}</p>')).toBeNull();
    expect(WireSplice.of('<p>Zoë {{greeting}}</p>')).toBeNull();
  });
});

describe('spliced quoted-printable text (per-recipient values between per-issue encoded segments)', () => {
  const template =
    '{{greeting}}\n\nZoë’s pick · “Natural Back Pain Relief” — 16 choices   \n' +
    `${'A line long enough to need a soft break or two, with = signs and tabs\tin it. '.repeat(3)}\n` +
    'You are receiving this because you subscribed {{email}} to Spine-health.\n' +
    'Unsubscribe: {{unsubscribeUrl}}\nPreferences: {{preferencesUrl}}';
  const joined = (s: { parts: readonly Buffer[]; values: string[] }) =>
    Buffer.concat(
      s.values.flatMap((v, i) => [s.parts[i], Buffer.from(v, 'latin1')]).concat(s.parts[s.values.length]),
    ).toString('latin1');
  /** Quoted-printable decoded by hand (RFC 2045 6.7): soft breaks vanish, =XX become bytes. */
  const decode = (qp: string) =>
    Buffer.from(
      qp.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
      'latin1',
    ).toString('utf8');

  it.each([
    ['plain values', 'Hi Sam,', 'https://x.example/unsubscribe/12.0.abcdefghijklmnopqrstuv'],
    [
      'a name with spaces at its end and = signs',
      'Hi Sam = Co   ',
      'https://x.example/subscribe?newsletter=spine-health',
    ],
    ['a non-ASCII name', 'Hi Zoë 山田 😀,', 'https://x.example/u'],
    ['a value longer than a line', `Hi ${'Bartholomew '.repeat(12)},`, `https://x.example/u/${'t'.repeat(150)}`],
    ['empty values', '', ''],
  ])('decodes to the Handlebars text with CRLF line ends, on lines of at most 76, for %s', (_label, greeting, url) => {
    const splice = TextSplice.of(template)!;
    const vars = { greeting, email: 'sam@example.com', unsubscribeUrl: url, preferencesUrl: url, clickReader: '1.x' };
    const qp = joined(splice.render(vars));
    expect(decode(qp)).toBe(Handlebars.compile(template, { noEscape: true })(vars).replace(/\r?\n/g, '\r\n'));
    expect(/^[\x20-\x7e\r\n\t]*$/.test(qp)).toBe(true);
    expect(qp.split('\r\n').every((l) => l.length <= 76 && !/[ \t]$/.test(l))).toBe(true);
    expect(qp.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });

  it('declines templates with anything but the four plain placeholders', () => {
    expect(TextSplice.of('Hi {{greeting}} {{#if x}}y{{/if}}')).toBeNull();
    expect(TextSplice.of('Hi \\{{greeting}}')).toBeNull();
    expect(TextSplice.of('Hi {{{greeting}}}')).toBeNull();
    expect(TextSplice.of('No placeholder at all')).not.toBeNull();
  });
});
