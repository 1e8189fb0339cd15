import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { simpleParser } from 'mailparser';
import { BulkMessageTemplate, MessageBuffer, QpTextSplice, type Sender } from './bulk-message.js';

const HTML = '<p>Hi Zo&#235;,</p>\r\n<p>Read <a href="https://example.com/a">more</a></p>\r\n';
const LIST_ID = '"Spine-health" <spine-health.localhost>';
const UNSUB = '<http://localhost:3000/unsubscribe/tok.en>';

async function both(from: Sender, subject: string, to: { name: string; address: string }, text: string) {
  const template = new BulkMessageTemplate({
    from,
    fromAddress: 'news@spine-health.example',
    subject,
    headers: { 'List-ID': LIST_ID, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
  });
  const built = template.build({ to, headers: { 'List-Unsubscribe': UNSUB }, text, html7bit: HTML });
  if (!built) throw new Error('expected the fast form');
  const reference = await new MailComposer({
    from,
    to,
    subject,
    text,
    textEncoding: 'base64',
    html: { raw: `Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${HTML}` },
    headers: {
      'List-ID': { prepared: true, value: LIST_ID },
      'List-Unsubscribe': { prepared: true, value: UNSUB },
      'List-Unsubscribe-Post': { prepared: true, value: 'List-Unsubscribe=One-Click' },
    },
  })
    .compile()
    .build();
  return { built, fast: await simpleParser(built.raw), slow: await simpleParser(reference) };
}

describe('bulk message template', () => {
  it('writes one sender’s messages into its buffer, the same bytes as new ones, and a new buffer after a drop', async () => {
    const template = new BulkMessageTemplate({
      from: { name: 'Spine-health', address: 'news@spine-health.example' },
      fromAddress: 'news@spine-health.example',
      subject: 'Spine-health weekly',
      headers: { 'List-ID': LIST_ID },
    });
    const parts = (name: string) => ({
      to: { name, address: 'sam@example.com' },
      headers: { 'List-Unsubscribe': UNSUB },
      text: `Hi ${name},\n\nA week of articles.`,
      html7bit: HTML,
    });
    const buffer = new MessageBuffer();
    const first = template.build(parts('Sam'), buffer)!;
    const firstBytes = Buffer.from(first.raw);
    const second = template.build(parts('Samantha Smith-Jones'), buffer)!;
    // The same memory, rewritten: the second message is whole and the first one's bytes are gone.
    expect(second.raw.buffer).toBe(first.raw.buffer);
    const alone = template.build(parts('Samantha Smith-Jones'))!;
    const strip = (b: Buffer) =>
      b
        .toString('latin1')
        .replace(/^Message-ID: .*$/m, '')
        .replace(/^Date: .*$/m, '');
    expect(strip(second.raw)).toBe(strip(alone.raw));
    expect((await simpleParser(second.raw)).text).toBe('Hi Samantha Smith-Jones,\n\nA week of articles.');
    expect(strip(firstBytes)).toContain('To: Sam <sam@example.com>');
    buffer.drop();
    const third = template.build(parts('Sam'), buffer)!;
    expect(third.raw.buffer).not.toBe(first.raw.buffer);
    expect(strip(third.raw)).toBe(strip(firstBytes));
  });

  it.each([
    ['a plain name', { name: 'Sam Smith', address: 'sam@example.com' }],
    ['a name with quotes and a comma', { name: 'O\'Brien, "Sam"', address: 'sam@example.com' }],
    ['a non-ASCII name', { name: 'Zoë Ünal 山田', address: 'zoe@example.com' }],
    ['no name', { name: '', address: 'x@example.com' }],
  ])('reads exactly as the MailComposer message does, for %s', async (_label, to) => {
    const text = `Hi ${to.name || 'there'},\n\nUnsubscribe: http://localhost:3000/unsubscribe/tok.en\n${'Lorem ipsum — “dolor” · '.repeat(40)}`;
    const { built, fast, slow } = await both(
      { name: 'Spine-health', address: 'news@spine-health.example' },
      'Spine-health: 16 choices — for “lasting” comfort and 5 more',
      to,
      text,
    );
    for (const key of ['from', 'to', 'subject', 'list-id', 'list-unsubscribe', 'list-unsubscribe-post', 'mime-version'])
      expect(JSON.stringify(fast.headers.get(key))).toBe(JSON.stringify(slow.headers.get(key)));
    expect(fast.text).toBe(slow.text);
    expect(fast.html).toBe(slow.html);
    expect(fast.messageId).toBe(built.messageId);
    expect(fast.date?.getTime()).toBeGreaterThan(Date.now() - 5000);
    expect(built.envelope).toEqual({ from: 'news@spine-health.example', to: [to.address] });
    const raw = built.raw.toString('latin1');
    // CRLF only, every line within RFC 5322's 998 characters, and nothing but ASCII on the wire.
    expect(raw.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(raw.split('\r\n').every((l) => l.length <= 998)).toBe(true);
    expect(/^[\x20-\x7e\r\n\t]*$/.test(raw)).toBe(true);
  });

  it("a message's own envelope sender (VERP) goes into its envelope only, not into any header", () => {
    const template = new BulkMessageTemplate({
      from: { name: 'Spine-health', address: 'news@spine-health.example' },
      fromAddress: 'news@spine-health.example',
      subject: 'Spine-health weekly',
      headers: {},
    });
    const to = { name: 'Sam', address: 'sam@example.com' };
    const verp = 'bounces+d1a-2s-abcdefghijklmnop@bounces.example.com';
    const own = template.build({ to, envelopeFrom: verp, headers: {}, text: 'Hi', html7bit: HTML })!;
    expect(own.envelope).toEqual({ from: verp, to: ['sam@example.com'] });
    expect(own.raw.toString('latin1')).not.toContain('bounces+');
    expect(template.build({ to, headers: {}, text: 'Hi', html7bit: HTML })!.envelope.from).toBe(
      'news@spine-health.example',
    );
  });

  it('takes a sender given as a string, and gives each message its own Message-ID', async () => {
    const { built, fast } = await both(
      'Spine-health <news@spine-health.example>',
      'Weekly',
      { name: 'A', address: 'a@example.com' },
      'hi',
    );
    expect(fast.from?.value[0]).toEqual({ name: 'Spine-health', address: 'news@spine-health.example' });
    const again = await both(
      'Spine-health <news@spine-health.example>',
      'Weekly',
      { name: 'A', address: 'a@example.com' },
      'hi',
    );
    expect(again.built.messageId).not.toBe(built.messageId);
    expect(built.messageId).toMatch(/^<[0-9a-f-]{36}@spine-health\.example>$/);
  });

  it('keeps CR and LF out of headers, and refuses what the fast form cannot carry', () => {
    const t = new BulkMessageTemplate({
      from: 'news@spine-health.example',
      fromAddress: 'news@spine-health.example',
      subject: 'S',
      headers: { 'List-ID': 'a\r\nBcc: evil@example.com' },
    });
    const ok = t.build({
      to: { name: 'N\r\nBcc: x@example.com', address: 'n@example.com' },
      headers: { 'List-Unsubscribe': '<https://x/u>\r\nX-Evil: 1' },
      text: 't',
      html7bit: '<p>x</p>',
    });
    const head = ok!.raw.toString('latin1').split('\r\n\r\n')[0];
    expect(head).not.toMatch(/^(Bcc|X-Evil):/im);
    const part = { to: { name: '', address: 'n@example.com' }, headers: {}, text: 't' };
    expect(t.build({ ...part, html7bit: '<p>Zoë</p>' })).toBeNull();
    expect(t.build({ ...part, to: { name: '', address: 'zoë@example.com' }, html7bit: '<p>x</p>' })).toBeNull();
    expect(t.build({ ...part, to: { name: '', address: 'a@b, c@d' }, html7bit: '<p>x</p>' })).toBeNull();
  });

  it('assembles the HTML from shared parts and personal values exactly as from the whole string', async () => {
    const t = new BulkMessageTemplate({
      from: 'news@spine-health.example',
      fromAddress: 'news@spine-health.example',
      subject: 'S',
      headers: {},
    });
    const base = { to: { name: 'Sam', address: 's@example.com' }, headers: {}, text: 'hello' };
    const parts = [Buffer.from('<p>'), Buffer.from('</p>\r\n<a href="'), Buffer.from('">x</a>\r\n')];
    const values = ['Hi Sam &amp; Co,', 'https://x.example/u/t'];
    const spliced = t.build({ ...base, html7bit: { parts, values } })!;
    const whole = t.build({
      ...base,
      html7bit: '<p>Hi Sam &amp; Co,</p>\r\n<a href="https://x.example/u/t">x</a>\r\n',
    })!;
    const body = (b: Buffer) => b.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n');
    expect(body(spliced.raw)).toBe(body(whole.raw));
    expect((await simpleParser(spliced.raw)).html).toBe((await simpleParser(whole.raw)).html);
    expect(t.build({ ...base, html7bit: { parts, values: ['Zoë', 'u'] } })).toBeNull();
  });

  it('writes the To field as nodemailer does, without its encoder when the name needs none', async () => {
    for (const to of [
      { name: 'Sam Smith', address: 'sam@example.com' },
      { name: 'O\'Brien, "Sam" \\ Co', address: 'sam@example.com' },
      { name: 'Zoë Ünal', address: 'zoe@example.com' },
      { name: `Bartholomew ${'Longname '.repeat(8)}`, address: 'bart@example.com' },
    ]) {
      const { built } = await both('news@spine-health.example', 'S', to, 'hi');
      const reference = await new MailComposer({
        from: 'news@spine-health.example',
        to,
        subject: 'S',
        text: 'hi',
        textEncoding: 'base64',
      })
        .compile()
        .build();
      const field = (raw: Buffer) => /^To: .*(?:\r\n[ \t].*)*/m.exec(raw.toString('latin1'))?.[0];
      expect(field(built.raw)).toBe(field(reference));
    }
  });

  it('carries a spliced quoted-printable text that reads as the whole text', async () => {
    const t = new BulkMessageTemplate({
      from: 'news@spine-health.example',
      fromAddress: 'news@spine-health.example',
      subject: 'S',
      headers: {},
    });
    const segments = ['', `\n\nZoë’s pick — ${'a long line of text '.repeat(6)}\nUnsubscribe: `, '\n'];
    const values = ['Hi Sam,', `https://x.example/unsubscribe/${'t'.repeat(90)}`];
    const base = { to: { name: 'Sam', address: 's@example.com' }, headers: {}, html7bit: '<p>x</p>' };
    const spliced = t.build({ ...base, text: QpTextSplice.of(segments).render(values) })!;
    const whole = t.build({ ...base, text: `${values[0]}${segments[1]}${values[1]}${segments[2]}` })!;
    const raw = spliced.raw.toString('latin1');
    expect(raw).toContain('Content-Transfer-Encoding: quoted-printable');
    expect(raw.split('\r\n').every((l) => l.length <= 998)).toBe(true);
    expect(/^[\x20-\x7e\r\n\t]*$/.test(raw)).toBe(true);
    const [a, b] = [await simpleParser(spliced.raw), await simpleParser(whole.raw)];
    expect(a.text).toBe(b.text);
    expect(a.html).toBe(b.html);
    // A value that would carry the boundary, or is not encoded (non-ASCII), is refused.
    expect(t.build({ ...base, text: { parts: [Buffer.from('a'), Buffer.from('b')], values: ['Zoë'] } })).toBeNull();
  });
});
