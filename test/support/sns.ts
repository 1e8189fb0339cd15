import { type KeyObject, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { snsStringToSign } from '#subscriptions/sns-signature.js';

/* A minimal DER writer: just enough X.509 to make a self-signed certificate at test time. */
function der(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len =
    n < 0x80
      ? Buffer.from([n])
      : n < 0x100
        ? Buffer.from([0x81, n])
        : n < 0x10000
          ? Buffer.from([0x82, n >> 8, n & 0xff])
          : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...parts: Buffer[]) => der(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => der(0x31, Buffer.concat(parts));
const integer = (bytes: Buffer) => der(0x02, bytes[0] & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
const utf8 = (s: string) => der(0x0c, Buffer.from(s, 'utf8'));
const bitString = (bytes: Buffer) => der(0x03, Buffer.concat([Buffer.from([0]), bytes]));
const utcTime = (d: Date) => der(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`, 'ascii'));
const SHA256_WITH_RSA = seq(der(0x06, Buffer.from('2a864886f70d01010b', 'hex')), Buffer.from([0x05, 0x00]));
const commonName = (cn: string) => seq(set(seq(der(0x06, Buffer.from('550403', 'hex')), utf8(cn))));

/** A fresh RSA key and a self-signed certificate for it (PEM), valid from an hour ago for a day. */
export function selfSignedCertificate(cn: string): { pem: string; privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const serial = randomBytes(8);
  serial[0] &= 0x7f;
  const now = Date.now();
  const tbs = seq(
    der(0xa0, integer(Buffer.from([2]))), // v3
    integer(serial),
    SHA256_WITH_RSA,
    commonName(cn),
    seq(utcTime(new Date(now - 3_600_000)), utcTime(new Date(now + 86_400_000))),
    commonName(cn),
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const cert = seq(tbs, SHA256_WITH_RSA, bitString(sign('sha256', tbs, privateKey)));
  const b64 = cert.toString('base64').replace(/(.{64})/g, '$1\n');
  return { pem: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`, privateKey };
}

/**
 * Plays Amazon SNS for the SES webhook: serves its signing certificate and the subscription
 * confirmation URL on a local HTTP server, and signs messages the way SNS does.
 */
export class FakeSns {
  readonly requests: string[] = [];
  private server!: Server;
  private readonly cert = selfSignedCertificate('sns.test');
  port = 0;

  async start(): Promise<this> {
    this.server = createServer((req: IncomingMessage, res) => {
      this.requests.push(req.url ?? '');
      if (req.url === '/SimpleNotificationService-test.pem') {
        res.writeHead(200, { 'content-type': 'application/x-x509-ca-cert' }).end(this.cert.pem);
      } else if (req.url?.startsWith('/?Action=ConfirmSubscription')) {
        res.writeHead(200, { 'content-type': 'text/xml' }).end('<ConfirmSubscriptionResponse/>');
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** What SES_SNS_ORIGIN_PATTERN must say to trust this server (and nothing else). */
  get originPattern(): string {
    return `^http://127\\.0\\.0\\.1:${this.port}$`;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get certUrl(): string {
    return `${this.origin}/SimpleNotificationService-test.pem`;
  }

  /** Adds SignatureVersion, SigningCertURL and Signature, signed with this server's key. */
  sign(
    message: Record<string, string>,
    opts: { version?: '1' | '2'; certUrl?: string; key?: KeyObject } = {},
  ): Record<string, string> {
    const version = opts.version ?? '2';
    const text = snsStringToSign(message);
    if (text === null) throw new Error(`cannot sign ${JSON.stringify(message)}`);
    const signature = sign(
      version === '1' ? 'sha1' : 'sha256',
      Buffer.from(text, 'utf8'),
      opts.key ?? this.cert.privateKey,
    );
    return {
      ...message,
      SignatureVersion: version,
      Signature: signature.toString('base64'),
      SigningCertURL: opts.certUrl ?? this.certUrl,
    };
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server.close(resolve));
  }
}
