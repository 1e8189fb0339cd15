import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { type IncomingHttpHeaders, type IncomingMessage, type RequestOptions, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { type Readable, Transform, pipeline } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import {
  type AddressPolicy,
  checkAddress,
  checkUrl,
  defaultPort,
  normaliseHost,
  pinnedLookup,
} from './address-policy.js';

/**
 * GET with SSRF guards, for URLs that staff type in (feeds): every hop's URL is checked
 * (scheme, port, metadata names), the host is resolved once and every address checked before any
 * connection, and the socket connects to exactly those addresses. Redirects are followed by hand.
 * The body is counted while it streams and is decompressed here, so a compression bomb stops at
 * the cap. Error messages are generic on purpose: they reach staff and must not tell a refused
 * port from a closed one, nor echo what an address answered.
 */

export type SafeFetchFailure =
  'refused' | 'dns' | 'connect' | 'timeout' | 'too-large' | 'redirect' | 'protocol' | 'decode';

export class SafeFetchError extends Error {
  constructor(
    readonly kind: SafeFetchFailure,
    message: string,
    /** For 'too-large': decoded bytes read before stopping. */
    readonly bytesRead?: number,
  ) {
    super(message);
    this.name = 'SafeFetchError';
  }
}

/** Resolves a host name to every address it has (like dns.lookup with all: true). */
export type Resolver = (host: string) => Promise<LookupAddress[]>;

export interface SafeFetchOptions extends AddressPolicy {
  headers: Record<string, string>;
  /** Deadline for the whole fetch: resolution, redirects and the body. */
  timeoutMs: number;
  /** Most body bytes after decompression; also caps the bytes on the wire. */
  maxBytes: number;
  /** Human form of maxBytes for the error message, e.g. "5 MB". */
  maxBytesLabel: string;
  maxRedirects?: number;
  /** Defaults to the system resolver (getaddrinfo, as the platform's own fetch would). */
  resolve?: Resolver;
  /** Exact IP addresses allowed whatever their class (tests; an embedder's known intranet host). */
  trustedAddresses?: ReadonlySet<string>;
}

export interface SafeFetchResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that answered, after redirects. */
  url: string;
  /** The decoded body of a 2xx answer; empty for every other status (never read). */
  body: Buffer;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const systemResolver: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

export async function safeFetch(url: string, opts: SafeFetchOptions): Promise<SafeFetchResponse> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), opts.timeoutMs);
  timer.unref();
  try {
    let current: URL;
    try {
      current = new URL(url);
    } catch {
      throw new SafeFetchError('refused', 'the feed address is not a valid URL');
    }
    const maxRedirects = opts.maxRedirects ?? 5;
    for (let hop = 0; ; hop += 1) {
      const res = await request(current, hop > 0, opts, deadline.signal);
      if (REDIRECTS.has(res.statusCode ?? 0)) {
        res.destroy();
        if (hop >= maxRedirects)
          throw new SafeFetchError('redirect', `the feed redirected more than ${maxRedirects} times`);
        const location = res.headers.location;
        let next: URL | null = null;
        try {
          next = location ? new URL(location, current) : null;
        } catch {
          next = null;
        }
        if (!next) throw new SafeFetchError('redirect', 'the feed answered a redirect without a valid Location');
        current = next;
        continue;
      }
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        res.destroy();
        return { status, headers: res.headers, url: current.toString(), body: Buffer.alloc(0) };
      }
      const body = await readBody(res, opts, deadline.signal);
      return { status, headers: res.headers, url: current.toString(), body };
    }
  } catch (err) {
    if (deadline.signal.aborted) throw new SafeFetchError('timeout', `the feed timed out after ${opts.timeoutMs} ms`);
    if (err instanceof SafeFetchError) throw err;
    // Anything unforeseen still gets a generic message: socket details would leak internals.
    throw new SafeFetchError('connect', 'could not connect to the feed');
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves and checks every address of `host`; an IP literal is checked as it is. */
async function resolveChecked(
  host: string,
  redirected: boolean,
  opts: SafeFetchOptions,
  signal: AbortSignal,
): Promise<LookupAddress[]> {
  const family = isIP(host);
  let addresses: LookupAddress[];
  if (family) addresses = [{ address: host, family }];
  else {
    try {
      addresses = await abortable((opts.resolve ?? systemResolver)(host), signal);
    } catch (err) {
      if (signal.aborted) throw err;
      throw new SafeFetchError('dns', 'could not resolve the feed host name');
    }
    if (addresses.length === 0) throw new SafeFetchError('dns', 'could not resolve the feed host name');
  }
  // One refused address refuses the host: a name must not mix public and private answers.
  for (const a of addresses) {
    if (opts.trustedAddresses?.has(a.address)) continue;
    const refusal = checkAddress(a.address, opts);
    if (refusal) throw refused(refusal.message, redirected);
  }
  return addresses;
}

/** A refusal; after a redirect it says so, so staff know the URL they typed was fine. */
function refused(message: string, redirected: boolean): SafeFetchError {
  return new SafeFetchError(
    'refused',
    redirected ? message.replace('the feed address is', 'the feed redirected to an address that is') : message,
  );
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** One hop: checks the URL and its addresses, then connects to exactly those addresses. */
async function request(
  url: URL,
  redirected: boolean,
  opts: SafeFetchOptions,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const host = normaliseHost(url.hostname);
  const refusal = checkUrl(url, opts);
  // A trusted IP literal is let through here and judged (as trusted) with resolved addresses below.
  if (refusal && !(refusal.reason === 'address' && opts.trustedAddresses?.has(host))) {
    throw refused(refusal.message, redirected);
  }
  const pinned = await resolveChecked(host, redirected, opts, signal);
  const options: RequestOptions = {
    method: 'GET',
    hostname: host,
    port: defaultPort(url),
    path: `${url.pathname}${url.search}`,
    headers: { ...opts.headers, host: url.host, 'accept-encoding': 'gzip, deflate, br' },
    // A fresh socket per request: a pooled one could have been checked under another policy.
    agent: false,
    signal,
    // Hands the socket the addresses checked above; nothing is resolved a second time.
    // (Not called for IP-literal hosts, which were checked as they are.)
    lookup: pinnedLookup(host, pinned),
  };
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(options, resolve);
    req.on('error', () => reject(new SafeFetchError('connect', 'could not connect to the feed')));
    req.end();
  });
}

/** Reads a 2xx body through its content-encodings, stopping as soon as either count passes the cap. */
async function readBody(res: IncomingMessage, opts: SafeFetchOptions, signal: AbortSignal): Promise<Buffer> {
  const tooLarge = (n: number) => new SafeFetchError('too-large', `the feed is larger than ${opts.maxBytesLabel}`, n);
  // Content-Length is only a hint: a larger declaration fails early, a smaller one proves nothing.
  const declared = Number(res.headers['content-length'] ?? 0);
  if (declared > opts.maxBytes) {
    res.destroy();
    throw tooLarge(0);
  }
  const encodings = (res.headers['content-encoding'] ?? '')
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e && e !== 'identity');
  if (encodings.length > 2) {
    res.destroy();
    throw new SafeFetchError('decode', 'the feed uses an unsupported content-encoding');
  }
  const decoders: NodeJS.ReadWriteStream[] = [];
  // Encodings are listed in the order they were applied, so undo them from the last.
  for (const e of [...encodings].reverse()) {
    if (e === 'gzip' || e === 'x-gzip') decoders.push(createGunzip());
    else if (e === 'deflate')
      decoders.push(createInflate()); // zlib-wrapped, as RFC 9110 defines it
    else if (e === 'br') decoders.push(createBrotliDecompress());
    else {
      res.destroy();
      throw new SafeFetchError('decode', 'the feed uses an unsupported content-encoding');
    }
  }
  // Counts the bytes on the wire, before decoding: an encoded body must not be endless either.
  let wire = 0;
  const wireCounter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      wire += chunk.length;
      done(wire > opts.maxBytes ? tooLarge(0) : null, chunk);
    },
  });
  // Typed as a writable by @types/node; the last stream of this pipeline is a readable transform.
  const out = pipeline([res, wireCounter, ...decoders], () => {
    /* errors surface through the iteration below */
  }) as unknown as Readable;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of out) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > opts.maxBytes) throw tooLarge(size);
      chunks.push(buf);
    }
  } catch (err) {
    res.destroy();
    out.destroy();
    if (signal.aborted) throw err;
    if (err instanceof SafeFetchError) throw err;
    if (decoders.length > 0 && isZlibError(err)) {
      throw new SafeFetchError('decode', 'the feed could not be decompressed');
    }
    throw new SafeFetchError('protocol', 'the connection to the feed broke off');
  }
  return Buffer.concat(chunks);
}

function isZlibError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
