import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EndpointRefused, checkEndpoint, postWebhook } from './webhook-post.js';

const resolver = (map: Record<string, string[]>) => async (host: string) =>
  (map[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

describe('endpoint address guard', () => {
  const resolve = resolver({
    'crm.example.com': ['93.184.216.34'],
    'inside.example.com': ['10.1.2.3'],
    'mixed.example.com': ['93.184.216.34', '127.0.0.1'],
  });
  const refused = (url: string, allowPrivate = false) =>
    checkEndpoint(url, { allowPrivate, resolve }).then(
      () => null,
      (e: unknown) => (e instanceof EndpointRefused ? e.message : `unexpected ${String(e)}`),
    );

  it('lets public http(s) hosts through, on any port', async () => {
    expect(await refused('https://crm.example.com/hooks')).toBeNull();
    expect(await refused('http://crm.example.com:8443/hooks')).toBeNull();
  });

  it('refuses other schemes, credentials, literal and resolved internal addresses, and metadata', async () => {
    expect(await refused('ftp://crm.example.com/')).toMatch(/only http and https/);
    expect(await refused('https://user:pw@crm.example.com/')).toMatch(/user name or password/);
    expect(await refused('http://127.0.0.1:9000/')).toMatch(/endpoint URL is not allowed/);
    expect(await refused('http://[::1]/')).toMatch(/not allowed/);
    expect(await refused('http://inside.example.com/')).toMatch(/not allowed/);
    expect(await refused('http://mixed.example.com/')).toMatch(/not allowed/);
    expect(await refused('http://169.254.169.254/latest', true)).toMatch(/metadata/);
    expect(await refused('http://metadata.google.internal/', true)).toMatch(/metadata/);
    expect(await refused('http://nowhere.example.com/')).toMatch(/could not resolve/);
    expect(await refused('not a url')).toMatch(/not a valid URL/);
  });

  it('lets loopback and private addresses through only with allowPrivate', async () => {
    expect(await refused('http://127.0.0.1:9000/', true)).toBeNull();
    expect(await refused('http://inside.example.com/', true)).toBeNull();
  });
});

describe('postWebhook', () => {
  it('POSTs JSON with the given headers, keeps a short excerpt, and does not follow redirects', async () => {
    const seen: { method?: string; headers: Record<string, unknown>; body: string; url?: string }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method, headers: req.headers, body, url: req.url });
        if (req.url === '/moved') {
          res.writeHead(302, { location: '/hook' }).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end('x'.repeat(5000));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const ok = await postWebhook(`http://127.0.0.1:${port}/hook`, { 'webhook-id': 'abc' }, '{"a":1}', {
        allowPrivate: true,
        timeoutMs: 5000,
      });
      expect(ok).toMatchObject({ ok: true, statusCode: 200 });
      expect(ok.excerpt!.length).toBeLessThanOrEqual(512);
      expect(seen[0]).toMatchObject({ method: 'POST', body: '{"a":1}', url: '/hook' });
      expect(seen[0].headers).toMatchObject({ 'webhook-id': 'abc', 'content-type': 'application/json' });

      // A name that resolves to ::1 first and 127.0.0.1 second (as localhost often does) reaches the IPv4 listener.
      const named = await postWebhook(`http://receiver.test:${port}/hook`, {}, '{}', {
        allowPrivate: true,
        timeoutMs: 5000,
        resolve: resolver({ 'receiver.test': ['::1', '127.0.0.1'] }),
      });
      expect(named).toMatchObject({ ok: true, statusCode: 200 });
      expect(seen).toHaveLength(2);

      const moved = await postWebhook(`http://127.0.0.1:${port}/moved`, {}, '{}', {
        allowPrivate: true,
        timeoutMs: 5000,
      });
      expect(moved).toMatchObject({ ok: false, statusCode: 302 });
      expect(seen).toHaveLength(3);

      const refused = await postWebhook(`http://127.0.0.1:${port}/hook`, {}, '{}', {
        allowPrivate: false,
        timeoutMs: 5000,
      });
      expect(refused).toMatchObject({ ok: false, error: expect.stringMatching(/not allowed/) });
      expect(seen).toHaveLength(3);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
