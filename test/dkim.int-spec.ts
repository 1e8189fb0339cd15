import 'reflect-metadata';
import { DkimKeys } from '#mail/dkim/dkim-keys.service.js';
import { openPrivateKey } from '#mail/dkim/dkim-key-material.js';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { dkimCli } from '../scripts/cli-dkim.js';
import { admin, waitUntil } from './support/admin.js';
import { type Backend, headerBlock, linkFrom } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { decode } from './support/html.js';
import { type PrintedRecord, recordFromZoneLine, verifyDkim } from './support/dkim.js';
import { useStack } from './support/stack.js';

const PUBLIC = 'http://mailroom.test';
const DOMAIN = 'spine-health.example';
const NEWSLETTER_FIELDS = ['from', 'to', 'subject', 'date', 'message-id', 'mime-version', 'content-type'];
const LIST_FIELDS = ['list-id', 'list-unsubscribe', 'list-unsubscribe-post'];

/**
 * DKIM per From domain: keys made through the CLI's code path, every kind of mail signed, and each
 * signature checked by an independent verifier (mailauth) that looks the key up in the record the
 * CLI printed. Once on each queue backend; the digest leaves from the main thread on one and from
 * the SMTP sending threads on the other.
 */
describe.each<[Backend, number]>([
  ['postgres', 0],
  ['redis', 2],
])('DKIM signing on the %s queue backend, SMTP_THREADS=%i', (backend, threads) => {
  const records: PrintedRecord[] = [];
  let generateOutput: string[] = [];
  const stack = useStack({
    label: `dkim_${backend}`,
    queue: backend,
    env: {
      SMTP_THREADS: String(threads),
      SEND_RATE_PER_SECOND: '100000',
      DIGEST_BATCH_SIZE: '10',
      MAIL_FROM: 'Mailroom <news@mailroom.test>',
    },
    prepare: async () => {
      await addAudience(stack.db.url, { prefix: 'dkim', count: 25, newsletter: 'spine-health' });
      const printed = await cli(['generate', DOMAIN, '--selector', 'mr1']);
      expect(printed.code).toBe(0);
      generateOutput = printed.out;
      records.push(recordOf(printed.out));
    },
  });

  /** Runs `npm run cli -- dkim …`'s code against the stack's database and APP_SECRET. */
  const cli = async (argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await dkimCli(argv, stack.config, { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out, err };
  };
  const recordOf = (out: string[]) => recordFromZoneLine(out.find((l) => l.includes(' IN TXT ('))!);
  const signatures = (raw: string) => headerBlock(raw).match(/^DKIM-Signature:/gim) ?? [];
  const tag = (raw: string, name: string) =>
    new RegExp(`[;\\s]${name}=([^;]+)`).exec(/^DKIM-Signature:.*$/m.exec(headerBlock(raw))?.[0] ?? '')?.[1]?.trim();

  const subscribe = async (email: string, newsletters: string[]) => {
    const res = await fetch(`${stack.apps.baseUrl}/v1/subscriptions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, name: 'Dee Kim', newsletters }),
    });
    expect(res.status).toBe(202);
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    return stack.smtp.to(email)[0];
  };

  const digestDone = (id: string) =>
    waitUntil(
      () => admin<{ status: string; sent: number }>(stack.apps.baseUrl, 'GET', `/v1/digests/${id}`).then((r) => r.body),
      (d) => !['scheduled', 'sending'].includes(d.status),
      60_000,
      `digest ${id}`,
    );

  it('prints the DNS TXT record: the selector’s name, v=DKIM1 and the key in strings of at most 255 characters', () => {
    const [record] = records;
    expect(record.name).toBe(`mr1._domainkey.${DOMAIN}`);
    expect(record.strings.join('')).toMatch(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*$/);
    // An RSA-2048 public key makes a value longer than one DNS string: it is split.
    expect(record.strings.length).toBeGreaterThan(1);
    for (const s of record.strings) expect(s.length).toBeLessThanOrEqual(255);
    expect(generateOutput.join('\n')).toContain(`name:  mr1._domainkey.${DOMAIN}`);
  });

  it('keeps the private key encrypted: the row holds no PEM, and another APP_SECRET cannot open it', async () => {
    const [row] = await query<{ private_key_enc: Buffer; selector: string }>(
      stack.db.url,
      `SELECT private_key_enc, selector FROM dkim_keys WHERE domain = $1 AND selector = 'mr1'`,
      [DOMAIN],
    );
    const stored = row.private_key_enc.toString('latin1');
    expect(stored).not.toContain('PRIVATE KEY');
    expect(stored).not.toMatch(/MII[A-Za-z0-9+/]{40}/);
    expect(openPrivateKey(stack.config.appSecret, DOMAIN, 'mr1', row.private_key_enc).asymmetricKeyType).toBe('rsa');
    expect(() => openPrivateKey('another-secret-0123456789-0123456789', DOMAIN, 'mr1', row.private_key_enc)).toThrow();
  });

  it('refuses a domain or selector that is not DNS label syntax, CR/LF included, and a selector used already', async () => {
    for (const argv of [
      ['generate', 'evil.example\r\nBcc: x@y'],
      ['generate', 'nodot'],
      ['generate', 'under_score.example'],
      ['generate', 'ok.example', '--selector', 'bad selector'],
      ['generate', 'ok.example', '--selector=-dash'],
      ['generate', DOMAIN, '--selector', 'mr1'],
    ]) {
      const r = await cli(argv);
      expect(r.code).toBe(65);
      expect(r.err.join(' ')).toMatch(/not a domain name|not a selector|already has a key/);
      expect(r.err.join(' ')).not.toMatch(/[\r\n]/);
    }
    expect((await cli(['generate'])).code).toBe(64);
    expect((await query(stack.db.url, `SELECT 1 FROM dkim_keys WHERE domain <> $1`, [DOMAIN])).length).toBe(0);
  });

  it('signs the confirmation and the guide with one signature that verifies (list headers covered on the guide)', async () => {
    const email = `dee-${backend}@example.com`;
    const confirmation = await subscribe(email, ['spine-health']);
    expect(signatures(confirmation.raw)).toHaveLength(1);
    const verdict = await verifyDkim(confirmation.raw, records);
    expect(verdict.results).toHaveLength(1);
    expect(verdict.results[0]).toMatchObject({ result: 'pass', domain: DOMAIN, selector: 'mr1' });
    expect(verdict.results[0].headers).toEqual(expect.arrayContaining(NEWSLETTER_FIELDS));
    expect(tag(confirmation.raw, 'c')).toBe('relaxed/relaxed');
    expect(tag(confirmation.raw, 'a')).toBe('rsa-sha256');

    const confirmLink = linkFrom(confirmation.parsed.text ?? '', `${PUBLIC}/confirm/`);
    const confirmed = await fetch(confirmLink.replace(PUBLIC, stack.apps.baseUrl), {
      method: 'POST',
      headers: { accept: 'application/json' },
    });
    expect(confirmed.status).toBe(200);
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 2);
    const guide = stack.smtp.to(email)[1];
    expect(guide.parsed.subject).toMatch(/^Your free guide/);
    expect(signatures(guide.raw)).toHaveLength(1);
    const g = await verifyDkim(guide.raw, records);
    expect(g.results[0]).toMatchObject({ result: 'pass', domain: DOMAIN, selector: 'mr1' });
    expect(g.results[0].headers).toEqual(expect.arrayContaining([...NEWSLETTER_FIELDS, ...LIST_FIELDS]));
  });

  it('leaves mail from a domain without a key unsigned', async () => {
    const mail = await subscribe(`unsigned-${backend}@example.com`, ['arthritis-health']);
    expect(mail.parsed.from?.text).toContain('@arthritis-health.example');
    expect(signatures(mail.raw)).toHaveLength(0);
    expect((await verifyDkim(mail.raw, records)).results[0].result).toBe('none');
  });

  it('signs a test copy (built whole, sent as raw bytes)', async () => {
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {
      sendAt: new Date(Date.now() + 3600_000).toISOString(),
    });
    const to = `qa-${backend}@example.com`;
    expect((await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${created.body.id}/test`, { to })).status).toBe(202);
    await stack.smtp.waitFor(() => stack.smtp.to(to).length === 1);
    const copy = stack.smtp.to(to)[0];
    expect(signatures(copy.raw)).toHaveLength(1);
    const v = await verifyDkim(copy.raw, records);
    expect(v.results[0]).toMatchObject({ result: 'pass', domain: DOMAIN, selector: 'mr1' });
    expect(v.results[0].headers).toEqual(expect.arrayContaining([...NEWSLETTER_FIELDS, 'list-id']));
    await admin(stack.apps.baseUrl, 'POST', `/v1/digests/${created.body.id}/cancel`);
  });

  it('signs every digest message on the spliced fast path, and a tampered header or body fails', async () => {
    const before = stack.smtp.messages.length;
    const created = await admin<{ id: string }>(stack.apps.baseUrl, 'POST', '/v1/newsletters/spine-health/digests', {});
    expect(created.status).toBe(201);
    const d = await digestDone(created.body.id);
    expect(d).toMatchObject({ status: 'sent' });
    const digests = stack.smtp.messages.slice(before).filter((m) => m.envelope.to[0].startsWith('dkim'));
    expect(digests.length).toBe(25);
    for (const m of digests) {
      // The bulk template's own boundary: this message took the spliced fast path.
      expect(m.raw).toContain('boundary="--_mr_');
      expect(signatures(m.raw)).toHaveLength(1);
      const v = await verifyDkim(m.raw, records);
      expect(v.results).toHaveLength(1);
      expect(v.results[0]).toMatchObject({ result: 'pass', domain: DOMAIN, selector: 'mr1' });
      expect(v.results[0].headers).toEqual(expect.arrayContaining([...NEWSLETTER_FIELDS, ...LIST_FIELDS]));
      // Signing kept the wire format: CRLF line ends, no line over 998 characters.
      expect(m.raw.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
      expect(m.raw.split('\r\n').every((line) => line.length <= 998)).toBe(true);
    }

    const sample = digests[0].raw;
    const tampered = [
      sample.replace(/^Subject: .*$/m, 'Subject: Something else'),
      sample.replace(/^(List-Unsubscribe: <[^>]+)>/m, '$1x>'),
      sample.replace(/^List-Unsubscribe-Post: .*$/m, 'List-Unsubscribe-Post: List-Unsubscribe=Two-Clicks'),
    ];
    for (const t of tampered) {
      expect(t).not.toBe(sample);
      expect((await verifyDkim(t, records)).results[0].result).toBe('fail');
    }
    // A changed body: mailauth reports the body hash mismatch (RFC 6376 6.1.3) as neutral, never pass.
    const body = (await verifyDkim(sample.replace('Read more', 'Read less'), records)).results[0];
    expect(body.result).not.toBe('pass');
    expect(body.comment).toMatch(/body hash/);
  });

  it('shows each domain’s record and whether its mail is signed on the console page', async () => {
    const users = stack.apps.api.get(StaffUsersService);
    const staff = { email: `dkim-${backend}@example.com`, password: 'a long enough password 123' };
    expect((await users.create({ ...staff, role: 'marketer' })).ok).toBe(true);
    const browser = new ConsoleBrowser(stack.apps.baseUrl);
    expect((await browser.signIn(staff.email, staff.password)).status).toBe(303);
    const overview = await browser.get('/admin');
    expect(overview.text).toContain('href="/admin/dkim"');
    const page = await browser.get('/admin/dkim');
    expect(page.status).toBe(200);
    const signed = /<section[^>]*data-domain="spine-health\.example"[\s\S]*?<\/section>/.exec(page.text)?.[0] ?? '';
    expect(signed).toContain('data-signing="yes"');
    expect(signed).toContain(`mr1._domainkey.${DOMAIN}`);
    expect(decode(signed)).toContain(`"${records[0].strings.join('" "')}"`);
    expect(signed).toContain('data-newsletter="spine-health"');
    const unsigned = /<section[^>]*data-domain="arthritis-health\.example"[\s\S]*?<\/section>/.exec(page.text)?.[0];
    expect(unsigned).toContain('data-signing="no"');
    // The default sender's domain is listed too, with no key: not signed.
    const fallback = /<section[^>]*data-domain="mailroom\.test"[\s\S]*?<\/section>/.exec(page.text)?.[0];
    expect(fallback).toContain('data-signing="no"');
    expect(decode(fallback ?? '')).toContain('The default sender (MAIL_FROM): news@mailroom.test');
    // Signed in or not at all.
    const anonymous = await new ConsoleBrowser(stack.apps.baseUrl).get('/admin/dkim');
    expect(anonymous.status).toBe(302);
    expect(anonymous.location).toMatch(/^\/admin\/login/);
  });

  it('rotates by selector: the new key signs, the old one is listed as retired and its mail still verifies', async () => {
    const oldMail = stack.smtp.messages.find((m) => tag(m.raw, 's') === 'mr1')!;
    const printed = await cli(['generate', DOMAIN, '--selector', 'mr2']);
    expect(printed.code).toBe(0);
    const mr2 = recordOf(printed.out);
    // No refresh by hand in the worker: lifecycle mail reads the keys again before it is signed,
    // so the next confirmation is signed with the new key at once (the api's copy is for its console page).
    await stack.apps.api.get(DkimKeys).refresh();

    const listed = await cli(['list']);
    expect(listed.out.join('\n')).toMatch(new RegExp(`^${DOMAIN.replace('.', '\\.')}\\tmr2\\tactive`, 'm'));
    expect(listed.out.join('\n')).toMatch(new RegExp(`^${DOMAIN.replace('.', '\\.')}\\tmr1\\tretired`, 'm'));

    const mail = await subscribe(`rotated-${backend}@example.com`, ['spine-health']);
    expect(signatures(mail.raw)).toHaveLength(1);
    expect(tag(mail.raw, 's')).toBe('mr2');
    expect((await verifyDkim(mail.raw, [mr2])).results[0]).toMatchObject({ result: 'pass', selector: 'mr2' });
    // Against the old record only, the new signature does not verify: it really is the new key.
    expect((await verifyDkim(mail.raw, records)).results[0].result).not.toBe('pass');
    // Mail signed before the rotation still verifies while the old record stays published.
    expect((await verifyDkim(oldMail.raw, [...records, mr2])).results[0].result).toBe('pass');

    // Retiring the active key stops signing.
    expect((await cli(['retire', DOMAIN, 'mr2'])).code).toBe(0);
    const unsigned = await subscribe(`retired-${backend}@example.com`, ['spine-health']);
    expect(signatures(unsigned.raw)).toHaveLength(0);
    expect((await cli(['remove', DOMAIN, 'mr1'])).code).toBe(0);
    expect((await cli(['remove', DOMAIN, 'mr1'])).code).toBe(65);
  });
});
