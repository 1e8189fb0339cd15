import { type KeyObject, X509Certificate, verify } from 'node:crypto';

/**
 * Amazon SNS message signatures, as AWS documents them ("Verifying the signatures of Amazon SNS
 * messages"): the signed string is "Name\nValue\n" for a fixed list of fields in byte order,
 * signed with SHA1withRSA (SignatureVersion 1) or SHA256withRSA (SignatureVersion 2) by the key in
 * the certificate at SigningCertURL. That URL is trusted only on an SNS host over https.
 */

const FIELDS: Record<string, readonly string[]> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};

/** Only Subject may be absent (a Notification published without one). */
const OPTIONAL = new Set(['Subject']);

export const SNS_MESSAGE_TYPES = Object.keys(FIELDS);

/** The message is not (provably) from SNS: answer 401. */
export class SnsSignatureError extends Error {
  override readonly name = 'SnsSignatureError';
}

/** The signing certificate could not be fetched right now: answer 5xx so that SNS retries. */
export class SnsCertificateUnavailableError extends Error {
  override readonly name = 'SnsCertificateUnavailableError';
}

/** The string SNS signed for this message, or null when a field it needs is missing or not a string. */
export function snsStringToSign(message: Record<string, unknown>): string | null {
  const fields = typeof message.Type === 'string' ? FIELDS[message.Type] : undefined;
  if (!fields) return null;
  let out = '';
  for (const name of fields) {
    const value = message[name];
    if (value === undefined && OPTIONAL.has(name)) continue;
    if (typeof value !== 'string') return null;
    out += `${name}\n${value}\n`;
  }
  return out;
}

/** Checks the signature against a public key; throws SnsSignatureError when it does not hold. */
export function checkSnsSignature(message: Record<string, unknown>, publicKey: KeyObject): void {
  const algorithm = message.SignatureVersion === '1' ? 'sha1' : message.SignatureVersion === '2' ? 'sha256' : undefined;
  if (!algorithm) throw new SnsSignatureError('SignatureVersion must be "1" or "2"');
  const signature = typeof message.Signature === 'string' ? message.Signature : '';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature)) throw new SnsSignatureError('Signature is missing or not base64');
  const text = snsStringToSign(message);
  if (text === null) throw new SnsSignatureError('the message lacks a field SNS signs');
  let ok = false;
  try {
    ok = verify(algorithm, Buffer.from(text, 'utf8'), publicKey, Buffer.from(signature, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw new SnsSignatureError('signature does not match');
}

/** A URL we may fetch on SNS's word: its origin matches the pattern, no credentials in it. */
export function trustedSnsUrl(raw: unknown, originPattern: RegExp): URL | null {
  if (typeof raw !== 'string' || raw.length > 2048) return null;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  if (u.username || u.password) return null;
  return originPattern.test(u.origin) ? u : null;
}

const MAX_CERT_BYTES = 64 * 1024;
const MAX_CACHED = 100;

/**
 * Verifies SNS messages. Signing certificates are fetched from SigningCertURL (only a trusted
 * origin, no redirects, 10 s at most) and kept in memory: SNS rotates them rarely.
 */
export class SnsMessageVerifier {
  private readonly keys = new Map<string, Promise<{ key: KeyObject; notAfter: number }>>();

  constructor(
    private readonly originPattern: RegExp,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly timeoutMs = 10_000,
  ) {}

  async verify(message: Record<string, unknown>): Promise<void> {
    const certUrl = trustedSnsUrl(message.SigningCertURL, this.originPattern);
    if (!certUrl) throw new SnsSignatureError('SigningCertURL is not an Amazon SNS certificate URL');
    if (!certUrl.pathname.endsWith('.pem')) throw new SnsSignatureError('SigningCertURL is not a certificate');
    // Cheap checks first: a malformed message costs no fetch.
    if (snsStringToSign(message) === null) throw new SnsSignatureError('the message lacks a field SNS signs');
    checkSnsSignature(message, await this.publicKey(certUrl.href));
  }

  private async publicKey(url: string): Promise<KeyObject> {
    const cached = this.keys.get(url);
    if (cached) {
      const c = await cached;
      if (c.notAfter >= Date.now()) return c.key;
      this.keys.delete(url);
    }
    const loading = this.load(url);
    const oldest = this.keys.keys().next();
    if (this.keys.size >= MAX_CACHED && !oldest.done) this.keys.delete(oldest.value);
    this.keys.set(url, loading);
    // Only good certificates stay cached: a failed fetch is tried again next time.
    loading.catch(() => {
      if (this.keys.get(url) === loading) this.keys.delete(url);
    });
    return (await loading).key;
  }

  private async load(url: string): Promise<{ key: KeyObject; notAfter: number }> {
    let pem: string;
    try {
      const res = await this.fetchImpl(url, { redirect: 'error', signal: AbortSignal.timeout(this.timeoutMs) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      if (Number(res.headers.get('content-length') ?? 0) > MAX_CERT_BYTES) throw new Error('certificate too large');
      pem = await res.text();
    } catch (err) {
      throw new SnsCertificateUnavailableError(
        `SNS signing certificate could not be fetched: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    if (pem.length > MAX_CERT_BYTES) throw new SnsSignatureError('signing certificate too large');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch {
      throw new SnsSignatureError('SigningCertURL did not return an X.509 certificate');
    }
    const now = Date.now();
    const notAfter = new Date(cert.validTo).getTime();
    if (new Date(cert.validFrom).getTime() > now || !(notAfter >= now))
      throw new SnsSignatureError('signing certificate is not valid now');
    return { key: cert.publicKey, notAfter };
  }
}
