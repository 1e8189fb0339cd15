import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { type IncomingMessage, type RequestOptions, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import {
  type AddressPolicy,
  checkAddress,
  checkUrl,
  defaultPort,
  normaliseHost,
  pinnedLookup,
} from '#digests/address-policy.js';

/**
 * The POST of an outgoing webhook, behind the same address guard as feeds (address-policy.ts):
 * http(s) only, no credentials in the URL, no cloud metadata, and no loopback, private or
 * link-local address unless FEED_ALLOW_PRIVATE. The host is resolved and every address checked
 * at registration and again before each POST (a name may be re-pointed inside: DNS rebinding);
 * the socket connects to exactly the addresses checked. Redirects are not followed: a 3xx is a
 * failed attempt like any other non-2xx. Any port may be named (receivers often have their own).
 */

export type Resolver = (host: string) => Promise<LookupAddress[]>;

export interface EndpointPolicy {
  allowPrivate: boolean;
  resolve?: Resolver;
}

const systemResolver: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

function policyOf(p: EndpointPolicy): AddressPolicy {
  return { allowPrivate: p.allowPrivate, allowedPorts: 'any' };
}

/** The address policy's messages speak of feeds; here the same rules speak of endpoint URLs. */
function reword(message: string): string {
  return message.replace('the feed address is', 'the endpoint URL is');
}

export class EndpointRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EndpointRefused';
  }
}

/** Parses and checks an endpoint URL and every address its host resolves to; throws EndpointRefused. */
export async function checkEndpoint(
  raw: string,
  policy: EndpointPolicy,
): Promise<{ url: URL; addresses: LookupAddress[] }> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EndpointRefused('the endpoint URL is not a valid URL');
  }
  const refusal = checkUrl(url, policyOf(policy));
  if (refusal) throw new EndpointRefused(reword(refusal.message));
  const host = normaliseHost(url.hostname);
  const family = isIP(host);
  let addresses: LookupAddress[];
  if (family) addresses = [{ address: host, family }];
  else {
    try {
      addresses = await (policy.resolve ?? systemResolver)(host);
    } catch {
      throw new EndpointRefused('could not resolve the endpoint host name');
    }
    if (addresses.length === 0) throw new EndpointRefused('could not resolve the endpoint host name');
  }
  // One refused address refuses the host: a name must not mix public and private answers.
  for (const a of addresses) {
    const r = checkAddress(a.address, policyOf(policy));
    if (r) throw new EndpointRefused(reword(r.message));
  }
  return { url, addresses };
}

export type PostOutcome =
  | { ok: boolean; statusCode: number; excerpt: string; durationMs: number; error?: undefined }
  | { ok: false; statusCode?: undefined; error: string; durationMs: number; excerpt?: undefined };

const EXCERPT_BYTES = 512;

/** POSTs `body` to the endpoint; never throws. Only a short excerpt of the answer is kept. */
export async function postWebhook(
  rawUrl: string,
  headers: Record<string, string>,
  body: string,
  opts: EndpointPolicy & { timeoutMs: number },
): Promise<PostOutcome> {
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), opts.timeoutMs);
  timer.unref();
  try {
    const { url, addresses } = await checkEndpoint(rawUrl, opts);
    const res = await send(url, addresses, headers, body, deadline.signal);
    const excerpt = await readExcerpt(res);
    const statusCode = res.statusCode ?? 0;
    return { ok: statusCode >= 200 && statusCode <= 299, statusCode, excerpt, durationMs: elapsed() };
  } catch (err) {
    const error = deadline.signal.aborted
      ? `timed out after ${opts.timeoutMs} ms`
      : err instanceof EndpointRefused
        ? err.message
        : 'could not connect to the endpoint';
    return { ok: false, error, durationMs: elapsed() };
  } finally {
    clearTimeout(timer);
  }
}

function send(
  url: URL,
  pinned: LookupAddress[],
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const host = normaliseHost(url.hostname);
  const payload = Buffer.from(body, 'utf8');
  const options: RequestOptions = {
    method: 'POST',
    hostname: host,
    port: defaultPort(url),
    path: `${url.pathname}${url.search}`,
    headers: {
      ...headers,
      host: url.host,
      'content-type': 'application/json',
      'content-length': String(payload.length),
      'user-agent': 'Mailroom-Webhooks/1',
    },
    // A fresh socket per request: a pooled one could have been checked under another policy.
    agent: false,
    signal,
    // Hands the socket the addresses checked above; nothing is resolved a second time.
    lookup: pinnedLookup(host, pinned),
  };
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(options, resolve);
    req.on('error', reject);
    req.end(payload);
  });
}

/** The first bytes of the answer, as text, for the attempt log; the rest is discarded unread. */
async function readExcerpt(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res) {
      const buf = chunk as Buffer;
      chunks.push(buf);
      size += buf.length;
      if (size >= EXCERPT_BYTES) break;
    }
  } catch {
    // A broken body still leaves the status code, which is what counts.
  } finally {
    res.destroy();
  }
  return (
    Buffer.concat(chunks)
      .subarray(0, EXCERPT_BYTES)
      .toString('utf8')
      // Control characters (other than tab and line breaks) are dropped: the excerpt is shown to staff.
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '')
      .replace(/\uFFFD+$/, '')
  );
}
