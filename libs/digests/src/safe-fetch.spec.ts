import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { brotliCompressSync, constants, createBrotliCompress, createDeflate, createGzip, gzipSync } from 'node:zlib';
import { type Resolver, SafeFetchError, type SafeFetchOptions, safeFetch } from './safe-fetch.js';

// Every socket these tests open goes to a loopback address; refusals of other addresses are
// proven by the absence of any connection (or by the pure address-policy spec).

const MB = 1024 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  server: Server;
  base: string;
  port: number;
  connections: number;
  requests: IncomingMessage[];
}

async function serve(host: string, handler: Handler): Promise<TestServer> {
  const t: TestServer = { server: createServer(), base: '', port: 0, connections: 0, requests: [] };
  t.server.on('connection', () => (t.connections += 1));
  t.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    t.requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((r) => t.server.listen(0, host, r));
  t.port = (t.server.address() as AddressInfo).port;
  t.base = `http://${host.includes(':') ? `[${host}]` : host}:${t.port}`;
  return t;
}

async function close(t: TestServer | undefined): Promise<void> {
  if (!t) return;
  t.server.closeAllConnections();
  await new Promise((r) => t.server.close(r));
}

/** Zeros, `mb` MB of them, produced lazily so the test never holds them all. */
function zeros(mb: number): Readable {
  let left = mb;
  return new Readable({
    read() {
      this.push(left-- > 0 ? Buffer.alloc(MB) : null);
    },
  });
}

const RSS = '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>';

function opts(extra: Partial<SafeFetchOptions> = {}): SafeFetchOptions {
  return {
    headers: { 'user-agent': 'Mailroom feed poller', accept: 'application/rss+xml' },
    timeoutMs: 5_000,
    maxBytes: 5 * MB,
    maxBytesLabel: '5 MB',
    allowPrivate: true,
    allowedPorts: 'any',
    ...extra,
  };
}

async function failure(p: Promise<unknown>): Promise<SafeFetchError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof SafeFetchError)) throw new Error(`expected a SafeFetchError, got ${String(err)}`);
  return err;
}

describe('safeFetch', () => {
  let main: TestServer;
  let other: TestServer; // on 127.0.0.2: a loopback address the policy refuses unless trusted
  const bombSent: Record<string, number> = {};

  beforeAll(async () => {
    other = await serve('127.0.0.2', (_req, res) => res.end(RSS));
    main = await serve('127.0.0.1', (req, res) => {
      const path = req.url ?? '/';
      const bomb = /^\/bomb-(gzip|deflate|br)$/.exec(path);
      if (path.startsWith('/feed.xml'))
        res.writeHead(200, { 'content-type': 'application/rss+xml', etag: '"e1"' }).end(RSS);
      else if (path === '/gzip.xml') res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(RSS));
      else if (path === '/gzip-br.xml')
        res.writeHead(200, { 'content-encoding': 'gzip, br' }).end(brotliCompressSync(gzipSync(RSS)));
      else if (path === '/bad-gzip.xml') res.writeHead(200, { 'content-encoding': 'gzip' }).end('not gzip at all');
      else if (path === '/zstd.xml') res.writeHead(200, { 'content-encoding': 'zstd' }).end('x');
      else if (bomb) {
        // 50 MB of zeros, compressed while sent: about 50 KB on the wire.
        const kind = bomb[1];
        const enc =
          kind === 'gzip'
            ? createGzip({ level: 9 })
            : kind === 'deflate'
              ? createDeflate({ level: 9 })
              : createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 4 } });
        res.writeHead(200, { 'content-encoding': kind });
        bombSent[kind] = 0;
        enc.on('data', (c: Buffer) => (bombSent[kind] += c.length));
        pipeline(zeros(50), enc, res).catch(() => undefined);
      } else if (path === '/big.xml')
        pipeline(zeros(6), res).catch(() => undefined); // chunked, no length
      else if (path === '/declared-big.xml') res.writeHead(200, { 'content-length': String(6 * MB) }).end();
      else if (path === '/404') res.writeHead(404).end('secret internal page');
      else if (path === '/hang')
        return; // never answers
      else if (path === '/trickle') {
        res.writeHead(200);
        const t = setInterval(() => res.write(' '), 50);
        res.on('close', () => clearInterval(t));
      } else if (path === '/reset') req.socket.destroy();
      else if (path.startsWith('/to?')) {
        res.writeHead(302, { location: new URL(path, 'http://x').searchParams.get('u')! }).end();
      } else if (path.startsWith('/hop/')) {
        const n = Number(path.slice(5));
        res.writeHead(n > 0 ? 307 : 200, n > 0 ? { location: `/hop/${n - 1}` } : {}).end(RSS);
      } else if (path === '/loop') res.writeHead(301, { location: '/loop' }).end();
      else res.writeHead(404).end();
    });
  });

  afterAll(async () => {
    await close(main);
    await close(other);
  });

  it('GETs a feed with the given headers, through a pinned resolution (one lookup, Host kept)', async () => {
    const resolved: string[] = [];
    const resolve: Resolver = async (host) => {
      resolved.push(host);
      return [{ address: '127.0.0.1', family: 4 }];
    };
    const before = main.requests.length;
    const res = await safeFetch(`http://Feed.Example.:${main.port}/feed.xml?x=1`, opts({ resolve }));
    expect(res.status).toBe(200);
    expect(res.headers.etag).toBe('"e1"');
    expect(res.body.toString()).toBe(RSS);
    expect(resolved).toEqual(['feed.example']);
    const req = main.requests[before];
    expect(req.url).toBe('/feed.xml?x=1');
    expect(req.headers).toMatchObject({
      host: `feed.example.:${main.port}`,
      'user-agent': 'Mailroom feed poller',
      accept: 'application/rss+xml',
      'accept-encoding': 'gzip, deflate, br',
    });
  });

  it('decodes gzip, and stacked encodings in the order they were applied', async () => {
    expect((await safeFetch(`${main.base}/gzip.xml`, opts())).body.toString()).toBe(RSS);
    expect((await safeFetch(`${main.base}/gzip-br.xml`, opts())).body.toString()).toBe(RSS);
    expect((await failure(safeFetch(`${main.base}/bad-gzip.xml`, opts()))).message).toBe(
      'the feed could not be decompressed',
    );
    expect((await failure(safeFetch(`${main.base}/zstd.xml`, opts()))).message).toBe(
      'the feed uses an unsupported content-encoding',
    );
  });

  it('never reads the body of a non-2xx answer', async () => {
    const res = await safeFetch(`${main.base}/404`, opts());
    expect(res.status).toBe(404);
    expect(res.body).toHaveLength(0);
  });

  describe('refuses before connecting', () => {
    it('a loopback feed without allowPrivate, whether an IP literal or a name', async () => {
      const before = main.connections;
      for (const url of [
        `${main.base}/feed.xml`,
        `http://127.1:${main.port}/feed.xml`,
        `http://2130706433:${main.port}/feed.xml`,
        `http://[::ffff:7f00:1]:${main.port}/feed.xml`,
        `http://localhost:${main.port}/feed.xml`,
      ]) {
        const err = await failure(safeFetch(url, opts({ allowPrivate: false })));
        expect({ url, kind: err.kind, message: err.message }).toEqual({
          url,
          kind: 'refused',
          message: 'the feed address is not allowed (private or reserved network)',
        });
      }
      expect(main.connections).toBe(before);
    });

    it('a host whose answers mix allowed and refused addresses', async () => {
      const resolve: Resolver = async () => [
        { address: '127.0.0.1', family: 4 },
        { address: '10.0.0.1', family: 4 },
      ];
      const before = main.connections;
      const err = await failure(
        safeFetch(
          `http://feed.example:${main.port}/feed.xml`,
          opts({ allowPrivate: false, resolve, trustedAddresses: new Set(['127.0.0.1']) }),
        ),
      );
      expect(err.message).toBe('the feed address is not allowed (private or reserved network)');
      expect(main.connections).toBe(before);
    });

    it('a port outside the allowed list', async () => {
      const before = main.connections;
      const err = await failure(safeFetch(`${main.base}/feed.xml`, opts({ allowedPorts: [80, 443] })));
      expect(err.message).toBe(`the feed address is not allowed (port ${main.port}; allowed: 80, 443)`);
      expect(main.connections).toBe(before);
    });

    it('a name that does not resolve, with its own generic message', async () => {
      const resolve: Resolver = () =>
        Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }));
      const err = await failure(safeFetch(`http://nowhere.example/feed.xml`, opts({ resolve })));
      expect(err.message).toBe('could not resolve the feed host name');
    });
  });

  describe('redirects', () => {
    // The first server is trusted by address; everything else follows the strict policy.
    const strict = () => opts({ allowPrivate: false, trustedAddresses: new Set(['127.0.0.1']) });
    const via = (target: string) => `${main.base}/to?u=${encodeURIComponent(target)}`;

    it('follows up to 5, checking each hop, and says so past that', async () => {
      const ok = await safeFetch(`${main.base}/hop/5`, strict());
      expect(ok.status).toBe(200);
      expect(ok.url).toBe(`${main.base}/hop/0`);
      const before = main.requests.length;
      expect((await failure(safeFetch(`${main.base}/loop`, strict()))).message).toBe(
        'the feed redirected more than 5 times',
      );
      expect(main.requests.length - before).toBe(6);
    });

    it('refuses a redirect from an allowed server to a refused address, without connecting to it', async () => {
      // Sanity: the target really answers when allowed.
      expect((await safeFetch(`${other.base}/`, opts())).status).toBe(200);
      const before = other.connections;
      for (const target of [`${other.base}/`, `http://[::1]:${other.port}/`, `http://0x7f.2:${other.port}/`]) {
        const err = await failure(safeFetch(via(target), strict()));
        expect({ target, message: err.message }).toEqual({
          target,
          message: 'the feed redirected to an address that is not allowed (private or reserved network)',
        });
      }
      expect(other.connections).toBe(before);
    });

    it('refuses redirects to metadata, other schemes and other ports even with allowPrivate', async () => {
      const cases: [string, string][] = [
        ['http://169.254.169.254/latest/meta-data/', 'cloud metadata service'],
        ['http://metadata.google.internal/computeMetadata/v1/', 'cloud metadata service'],
        ['http://[fd00:ec2::254]/latest/meta-data/', 'cloud metadata service'],
        ['file:///etc/passwd', 'only http and https'],
        ['gopher://127.0.0.1:6379/_INFO', 'only http and https'],
        ['http://127.0.0.1:6379/', `port 6379; allowed: 80, 443, ${main.port}`],
      ];
      for (const [target, why] of cases) {
        // Ports: the first hop is on an allowed port only if the list includes it.
        const policy = opts({ allowedPorts: [80, 443, main.port] });
        const err = await failure(safeFetch(via(target), policy));
        expect({ target, message: err.message }).toEqual({
          target,
          message: `the feed redirected to an address that is not allowed (${why})`,
        });
      }
    });
  });

  describe('size', () => {
    it.each(['gzip', 'deflate', 'br'])(
      'a %s bomb (50 MB of zeros) stops at the 5 MB cap while decoding',
      async (kind) => {
        const err = await failure(safeFetch(`${main.base}/bomb-${kind}`, opts()));
        expect(err.message).toBe('the feed is larger than 5 MB');
        // Decoded bytes read: just past the cap, not the 50 MB the body expands to.
        expect(err.bytesRead).toBeGreaterThan(5 * MB);
        expect(err.bytesRead).toBeLessThan(5 * MB + 256 * 1024);
        expect(bombSent[kind]).toBeLessThan(MB); // the whole bomb is small on the wire
      },
    );

    it('an uncompressed body with no length stops at the cap; a declared length over it fails at once', async () => {
      const big = await failure(safeFetch(`${main.base}/big.xml`, opts()));
      expect(big.message).toBe('the feed is larger than 5 MB');
      expect(big.bytesRead).toBeLessThan(5 * MB + 256 * 1024);
      const declared = await failure(safeFetch(`${main.base}/declared-big.xml`, opts()));
      expect(declared.message).toBe('the feed is larger than 5 MB');
      expect(declared.bytesRead).toBe(0);
    });
  });

  describe('failures get generic messages', () => {
    it('a closed port and a reset connection read the same', async () => {
      const gone = await serve('127.0.0.1', () => undefined);
      await close(gone);
      const closed = await failure(safeFetch(`${gone.base}/feed.xml`, opts()));
      const reset = await failure(safeFetch(`${main.base}/reset`, opts()));
      expect(closed.message).toBe('could not connect to the feed');
      expect(reset.message).toBe('could not connect to the feed');
    });

    it('times out waiting for the answer and while the body trickles in', async () => {
      for (const path of ['/hang', '/trickle']) {
        const err = await failure(safeFetch(`${main.base}${path}`, opts({ timeoutMs: 300 })));
        expect({ path, kind: err.kind, message: err.message }).toEqual({
          path,
          kind: 'timeout',
          message: 'the feed timed out after 300 ms',
        });
      }
    });

    it('an invalid URL', async () => {
      expect((await failure(safeFetch('not a url', opts()))).message).toBe('the feed address is not a valid URL');
    });
  });
});
