import { createPrivateKey } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { type PrintedRecord, verifyDkim } from '../../../../test/support/dkim.js';
import { BulkMessageTemplate, QpTextSplice } from '../bulk-message.js';
import {
  defaultSelector,
  DkimInputError,
  dkimDnsRecord,
  dkimDomain,
  dkimSelector,
  generateDkimKeyPair,
  openPrivateKey,
  sealPrivateKey,
} from './dkim-key-material.js';
import { type DkimSigningKey, signRawMessage } from './dkim-signer.js';

const SECRET = 'a-test-app-secret-0123456789-abcdef';
const pair = generateDkimKeyPair();
const key: DkimSigningKey = {
  domain: 'spine-health.example',
  selector: 'mr202612',
  privateKey: createPrivateKey(pair.privateKeyPem),
};
const record = dkimDnsRecord(key.domain, key.selector, pair.publicKey);
const records: PrintedRecord[] = [{ name: record.name, strings: record.strings }];

describe('DKIM key material', () => {
  it('takes domains and selectors in DNS label syntax only, lower-cased', () => {
    expect(dkimDomain(' Spine-Health.Example ')).toBe('spine-health.example');
    expect(dkimDomain('xn--bcher-kva.example')).toBe('xn--bcher-kva.example');
    for (const bad of [
      '',
      'localhost',
      'a..b',
      '-a.example',
      'a-.example',
      'a_b.example',
      'a b.example',
      'x.example\r\nBcc: y',
      `${'a'.repeat(64)}.example`,
      'bücher.example',
    ])
      expect(() => dkimDomain(bad)).toThrow(DkimInputError);
    expect(dkimSelector('MR2026')).toBe('mr2026');
    expect(dkimSelector('s1.brand')).toBe('s1.brand');
    for (const bad of ['', 'a b', 'a\nb', 'a;b', '-x', 'x'.repeat(64)])
      expect(() => dkimSelector(bad)).toThrow(DkimInputError);
    expect(defaultSelector(new Date('2026-12-07T00:00:00Z'))).toBe('mr202612');
  });

  it('seals the private key with AES-256-GCM: only the same APP_SECRET, domain and selector open it', () => {
    const sealed = sealPrivateKey(SECRET, key.domain, key.selector, pair.privateKeyPem);
    expect(sealed.toString('latin1')).not.toContain('PRIVATE KEY');
    expect(openPrivateKey(SECRET, key.domain, key.selector, sealed).export({ type: 'pkcs8', format: 'pem' })).toBe(
      pair.privateKeyPem,
    );
    expect(() => openPrivateKey(`${SECRET}x`, key.domain, key.selector, sealed)).toThrow();
    expect(() => openPrivateKey(SECRET, 'other.example', key.selector, sealed)).toThrow();
    const flipped = Buffer.from(sealed);
    flipped[40] ^= 1;
    expect(() => openPrivateKey(SECRET, key.domain, key.selector, flipped)).toThrow();
  });

  it('prints the record under <selector>._domainkey in strings of at most 255 characters', () => {
    expect(record.name).toBe('mr202612._domainkey.spine-health.example');
    expect(record.value).toBe(`v=DKIM1; k=rsa; p=${pair.publicKey}`);
    expect(record.strings.join('')).toBe(record.value);
    expect(record.strings.every((s) => s.length <= 255)).toBe(true);
    expect(record.zoneLine).toBe(`${record.name}. IN TXT ( ${record.strings.map((s) => `"${s}"`).join(' ')} )`);
  });
});

describe('DKIM signing of built messages', () => {
  const template = (dkim: DkimSigningKey | null) =>
    new BulkMessageTemplate({
      from: { name: 'Spine-health', address: 'newsletter@Spine-Health.example' },
      fromAddress: 'newsletter@Spine-Health.example',
      subject: 'A week of  spine news',
      headers: {
        'List-ID': '"Spine-health" <spine-health.test>',
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
      dkim: { keyForDomain: (d) => (dkim && d === dkim.domain ? dkim : null) },
    });
  // Static parts and values whose edges meet in whitespace and line ends: what the shared canonical parts must get right.
  const text = QpTextSplice.of(['Hi ', ',\n\nRead  it:\t', ' \n\n', '']);
  const html = [Buffer.from('<p>Hi  '), Buffer.from(' </p>\r\n<a href="'), Buffer.from('">x</a> \r\n\r\n')];

  it('signs the spliced fast path so that an independent verifier passes it, per recipient', async () => {
    const t = template(key);
    for (const [name, link] of [
      ['Sam', 'https://x.test/a'],
      ['Zoë  Tab\t', 'https://x.test/b?c=d e'],
      ['', ' '],
    ]) {
      const built = t.build({
        to: { name, address: `${name.length}@example.com` },
        headers: { 'List-Unsubscribe': `<https://x.test/u/${name.length}>` },
        text: text.render([name, link, ' trailing ']),
        html7bit: { parts: html, values: [name.replace(/\P{ASCII}/gu, 'e'), link] },
      })!;
      const raw = built.raw.toString('latin1');
      expect(raw.match(/^DKIM-Signature:/gm)).toHaveLength(1);
      const v = await verifyDkim(built.raw, records);
      expect(v.results[0]).toMatchObject({ result: 'pass', domain: key.domain, selector: key.selector });
      expect(v.results[0].headers).toEqual(
        expect.arrayContaining([
          'from',
          'to',
          'subject',
          'date',
          'message-id',
          'mime-version',
          'content-type',
          'list-id',
          'list-unsubscribe',
          'list-unsubscribe-post',
        ]),
      );
    }
    // The whole-text (base64) form too.
    const whole = t.build({
      to: { name: 'W', address: 'w@example.com' },
      headers: {},
      text: 'Plain  text \n\n',
      html7bit: '<p> x </p>\r\n',
    })!;
    expect((await verifyDkim(whole.raw, records)).results[0].result).toBe('pass');
  });

  it('adds nothing to a message whose From domain has no key', () => {
    const built = template(null).build({
      to: { name: '', address: 'a@example.com' },
      headers: {},
      text: 'x',
      html7bit: '<p>x</p>',
    })!;
    expect(built.raw.toString('latin1')).not.toMatch(/^DKIM-Signature:/m);
  });

  it('signs a message built whole (test copies, the fallback) in front of its bytes', async () => {
    const raw = await new MailComposer({
      from: 'Spine-health <newsletter@spine-health.example>',
      to: 'qa@example.com',
      subject: 'Zoë’s test copy',
      text: 'Hello  there \n\n\n',
      html: '<p>Hello</p>',
    })
      .compile()
      .build();
    const signed = signRawMessage(key, raw);
    expect(signed.subarray(signed.length - raw.length).equals(raw)).toBe(true);
    expect((await verifyDkim(signed, records)).results[0].result).toBe('pass');
    const tampered = signed.toString('latin1').replace('Hello  there', 'Hello there!');
    expect((await verifyDkim(tampered, records)).results[0].result).not.toBe('pass');
  });
});
