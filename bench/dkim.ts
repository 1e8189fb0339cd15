/**
 * DKIM signing cost. In-process: the digest's spliced fast path (`BulkMessageTemplate.build`) per
 * message, unsigned and signed, with the parts of the signature timed apart (RSA-2048, and the
 * whole message signed as one buffer for comparison). End to end: the digest send rate of a
 * newsletter whose From domain has a key against one whose domain has none, the same worker and
 * audience size, alternated in one run.
 */
import { createPrivateKey, sign as rsaSign } from 'node:crypto';
import { loadConfig } from '#config/config.js';
import { DigestRenderer } from '#digests/digest-renderer.service.js';
import { BulkMessageTemplate, MessageBuffer } from '#mail/bulk-message.js';
import { generateDkimKeyPair, sealPrivateKey } from '#mail/dkim/dkim-key-material.js';
import { type DkimSigningKey, signRawMessage } from '#mail/dkim/dkim-signer.js';
import { signToken } from '#subscriptions/tokens.js';
import { captureNext, type DigestRun, type Sink, timedDigest } from './digest.js';
import { APP_SECRET, type Child, inProcessArticles, median, now, query } from './support.js';

export const DKIM_SIGNED_SLUG = 'dkim-signed';
export const DKIM_UNSIGNED_SLUG = 'dkim-unsigned';
const SIGNED_DOMAIN = 'signed.example';

export interface DkimMicroResult {
  unsignedUs: number;
  signedUs: number;
  /** One RSA-2048 PKCS#1 v1.5 signature over SHA-256 (what each message needs at least). */
  rsaUs: number;
  /** The message signed as one buffer after it was built (`signRawMessage`): no shared parts. */
  wholeMessageUs: number;
  messageBytes: number;
  personalValues: number;
  recipients: number;
}

export interface DkimRateResult {
  signed: DigestRun[];
  unsigned: DigestRun[];
  signedMailsPerS: number;
  unsignedMailsPerS: number;
  ratio: number;
  recipients: number;
}

/** µs per message of the fast path, unsigned vs signed (median of `reps` loops of `recipients`). */
export async function benchDkimMicro(opts: { reps: number; recipients: number }): Promise<DkimMicroResult> {
  const config = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://unused@127.0.0.1/unused',
    SMTP_URL: 'smtp://127.0.0.1:25',
    APP_SECRET,
    PUBLIC_URL: 'http://mailroom.bench',
    PUBLIC_URL_ALLOW_HTTP: 'true',
  });
  const renderer = new DigestRenderer(config);
  await renderer.onModuleInit();
  // Tracked links, as digests go out by default: every article link carries the reader's part.
  const issue = await renderer.renderIssue('Spine-health', inProcessArticles('dkim'), new Date(), {}, null, 'strict', {
    digestId: '1',
    newsletterSlug: 'spine-health',
    tracking: true,
    webVersion: true,
  });
  const pair = generateDkimKeyPair();
  const key: DkimSigningKey = {
    domain: 'spine-health.example',
    selector: 'bench',
    privateKey: createPrivateKey(pair.privateKeyPem),
  };
  const template = (signed: boolean) =>
    new BulkMessageTemplate({
      from: { name: 'Spine-health', address: 'newsletter@spine-health.example' },
      fromAddress: 'newsletter@spine-health.example',
      subject: issue.subject,
      headers: {
        'List-ID': '"Spine-health" <spine-health.mailroom.bench>',
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      },
      dkim: { keyForDomain: () => (signed ? key : null) },
    });
  const parts = (i: number) => {
    const url = `http://mailroom.bench/unsubscribe/${signToken(APP_SECRET, 'unsubscribe', String(i + 1))}`;
    const spliced = renderer.personalizeSpliced('bench-dkim', issue, {
      greeting: `Hi Reader ${i},`,
      email: `reader${i}@example.com`,
      unsubscribeUrl: url,
      preferencesUrl: url,
      clickReader: `${i + 1}.AAAAAAAAAAAAAAAA`,
    });
    if (!spliced) throw new Error('the bench issue does not fit the spliced fast path');
    return {
      to: { name: `Reader ${i}`, address: `reader${i}@example.com` },
      headers: { 'List-Unsubscribe': `<${url}>` },
      text: spliced.text,
      html7bit: spliced.html,
    };
  };
  // The personal parts are made before the clock starts: only building (and signing) is timed.
  const inputs = Array.from({ length: opts.recipients }, (_, i) => parts(i));
  const first = inputs[0];
  const personalValues =
    (typeof first.html7bit === 'string' ? 0 : first.html7bit.values.length) +
    (typeof first.text === 'string' ? 0 : first.text.values.length);
  const loop = (t: BulkMessageTemplate, after?: (raw: Buffer) => void): number => {
    const buffer = new MessageBuffer();
    const t0 = now();
    for (const p of inputs) {
      const built = t.build(p, buffer);
      if (!built) throw new Error('a bench message left the fast path');
      after?.(built.raw);
    }
    return ((now() - t0) * 1000) / inputs.length;
  };
  const unsignedT = template(false);
  const signedT = template(true);
  const messageBytes = unsignedT.build(first)!.raw.length;
  loop(unsignedT);
  loop(signedT);
  const unsigned: number[] = [];
  const signed: number[] = [];
  const whole: number[] = [];
  for (let r = 0; r < opts.reps; r++) {
    unsigned.push(loop(unsignedT));
    signed.push(loop(signedT));
    whole.push(loop(unsignedT, (raw) => signRawMessage(key, raw)));
  }
  const header = Buffer.alloc(700, 'x');
  const rsa: number[] = [];
  for (let r = 0; r < opts.reps; r++) {
    const t0 = now();
    for (let i = 0; i < 500; i++) rsaSign('sha256', header, key.privateKey);
    rsa.push(((now() - t0) * 1000) / 500);
  }
  return {
    unsignedUs: median(unsigned),
    signedUs: median(signed),
    rsaUs: median(rsa),
    wholeMessageUs: median(whole) - median(unsigned),
    messageBytes,
    personalValues,
    recipients: opts.recipients,
  };
}

/**
 * Two newsletters like spine-health but for their From (`news@signed.example`, which gets a key,
 * and `news@unsigned.example`), each with its readers (`addAudience`). Before the worker starts: it reads
 * the keys as it boots.
 */
export async function prepareDkimRate(dbUrl: string, addAudience: (slug: string) => Promise<void>): Promise<void> {
  for (const [slug, domain] of [
    [DKIM_SIGNED_SLUG, SIGNED_DOMAIN],
    [DKIM_UNSIGNED_SLUG, 'unsigned.example'],
  ]) {
    await query(
      dbUrl,
      `INSERT INTO newsletters (slug, name, description, from_name, from_email)
       SELECT $1, 'Spine-health', description, 'Spine-health', 'news@' || $2 FROM newsletters WHERE slug = 'spine-health'`,
      [slug, domain],
    );
    await addAudience(slug);
  }
  const pair = generateDkimKeyPair();
  await query(
    dbUrl,
    `INSERT INTO dkim_keys (domain, selector, public_key, private_key_enc) VALUES ($1, 'bench', $2, $3)`,
    [SIGNED_DOMAIN, pair.publicKey, sealPrivateKey(APP_SECRET, SIGNED_DOMAIN, 'bench', pair.privateKeyPem)],
  );
}

/** Signed and unsigned digests alternated (unsigned, signed, …) on one worker, after a warm-up pair. */
export async function benchDkimRate(opts: {
  dbUrl: string;
  apiUrl: string;
  sink: Sink;
  worker: Child;
  recipients: number;
  reps: number;
}): Promise<DkimRateResult> {
  const run = (slug: string) =>
    timedDigest({
      dbUrl: opts.dbUrl,
      apiUrl: opts.apiUrl,
      sink: opts.sink,
      slug,
      recipients: opts.recipients,
      worker: opts.worker,
      timeoutMs: 600_000,
    });
  // The warm-up pair, whose first messages show that one is signed and the other not.
  let captured = captureNext(opts.sink);
  await run(DKIM_UNSIGNED_SLUG);
  if (/^DKIM-Signature:/im.test((await captured).toString('latin1')))
    throw new Error('the unsigned newsletter’s digest was signed');
  captured = captureNext(opts.sink);
  await run(DKIM_SIGNED_SLUG);
  const head = (await captured).toString('latin1');
  if (!/^DKIM-Signature:[^]*?d=signed\.example;/im.test(head))
    throw new Error('the signed newsletter’s digest carried no DKIM-Signature of signed.example');
  const signed: DigestRun[] = [];
  const unsigned: DigestRun[] = [];
  for (let r = 0; r < opts.reps; r++) {
    unsigned.push(await run(DKIM_UNSIGNED_SLUG));
    signed.push(await run(DKIM_SIGNED_SLUG));
  }
  const signedMailsPerS = median(signed.map((d) => d.mailsPerS));
  const unsignedMailsPerS = median(unsigned.map((d) => d.mailsPerS));
  return {
    signed,
    unsigned,
    signedMailsPerS,
    unsignedMailsPerS,
    ratio: signedMailsPerS / unsignedMailsPerS,
    recipients: opts.recipients,
  };
}
