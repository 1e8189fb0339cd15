import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { emailHash, signToken, verifyToken } from '#subscriptions/tokens.js';
import { headerBlock, linkFrom } from '../support/apps.js';
import { query } from '../support/db.js';
import { postForm, postJson } from '../support/http.js';
import { useStack } from '../support/stack.js';

const PUBLIC = 'http://mailroom.test';

const figures: Record<string, unknown> = {};
function record(name: string, value: unknown): void {
  figures[name] = value;
  mkdirSync('artifacts', { recursive: true });
  writeFileSync('artifacts/faults-abuse.json', JSON.stringify(figures, null, 2));
}

const STATES = ['new', 'pending', 'active', 'unsubscribed', 'suppressed'] as const;
type State = (typeof STATES)[number];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

describe('abuse and token guessing', () => {
  const stack = useStack({ label: 'abuse', env: { TRUST_PROXY: 'true', PUBLIC_POSTS_PER_IP_PER_MINUTE: '12' } });

  it('1 000 signups of one address from 100 IPs: at most 3 confirmation mails, and 429 past each IP limit', async () => {
    const codes = new Map<number, number>();
    for (let ip = 0; ip < 100; ip += 1) {
      const batch = await Promise.all(
        Array.from({ length: 10 }, () =>
          postJson(
            `${stack.apps.baseUrl}/v1/subscriptions`,
            { email: 'target@example.com' },
            { 'x-forwarded-for': `198.51.100.${ip}` },
          ).then((r) => r.status),
        ),
      );
      for (const c of batch) codes.set(c, (codes.get(c) ?? 0) + 1);
    }
    expect(codes.get(202)).toBe(1000);
    // The same IP past its limit is refused.
    const extra = [];
    for (let i = 0; i < 3; i += 1)
      extra.push(
        (
          await postJson(
            `${stack.apps.baseUrl}/v1/subscriptions`,
            { email: `x${i}@example.com` },
            { 'x-forwarded-for': '198.51.100.7' },
          )
        ).status,
      );
    expect(extra).toEqual([202, 202, 429]); // 12 a minute per IP: 10 used above
    await stack.smtp.waitFor(() => stack.smtp.to('target@example.com').length >= 3);
    await new Promise((r) => setTimeout(r, 1500));
    expect(stack.smtp.to('target@example.com')).toHaveLength(3);
  });

  it('100 000 random and bit-flipped tokens verify as nothing', () => {
    const secret = stack.apps.config.appSecret;
    const valid = signToken(secret, 'unsubscribe', '12345');
    let accepted = 0;
    for (let i = 0; i < 50_000; i += 1) {
      const random = `${Math.floor(Math.random() * 1e6) + 1}.0.${randomBytes(16).toString('base64url')}`;
      if (verifyToken(secret, 'unsubscribe', random).ok || verifyToken(secret, 'guide', random).ok) accepted += 1;
    }
    const bytes = Buffer.from(valid);
    for (let i = 0; i < 50_000; i += 1) {
      const flipped = Buffer.from(bytes);
      const pos = i % flipped.length;
      flipped[pos] ^= 1 << (i % 7);
      const t = flipped.toString('latin1');
      if (t !== valid && verifyToken(secret, 'unsubscribe', t).ok) accepted += 1;
    }
    expect(accepted).toBe(0);
  });

  it('2 000 guessed links over HTTP change nothing', async () => {
    const email = 'guarded@example.com';
    await postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email }, { 'x-forwarded-for': '203.0.113.200' });
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 1);
    const link = linkFrom(stack.smtp.to(email)[0].parsed.text ?? '', `${PUBLIC}/confirm/`);
    expect(
      (
        await fetch(link.replace(PUBLIC, stack.apps.baseUrl), {
          method: 'POST',
          headers: { 'x-forwarded-for': '203.0.113.201' },
        })
      ).status,
    ).toBe(200);
    await stack.smtp.waitFor(() => stack.smtp.to(email).length >= 2);
    const unsub = /<(http[^>]+)>/.exec(
      /^List-Unsubscribe: (.*)$/m.exec(headerBlock(stack.smtp.to(email)[1].raw))![1],
    )![1];
    const [id, exp, mac] = unsub.split('/').pop()!.split('.');
    const statuses = new Set<number>();
    for (let i = 0; i < 2000; i += 1) {
      const flip = mac.split('');
      flip[i % flip.length] = flip[i % flip.length] === 'A' ? 'B' : 'A';
      const guesses = [
        `/unsubscribe/${id}.${exp}.${flip.join('')}`,
        `/unsubscribe/${Number(id) + (i % 50) + 1}.${exp}.${mac}`,
        `/confirm/${randomBytes(32).toString('base64url')}`,
        `/guides/natural-back-pain-relief/${id}.${exp}.${mac}`,
      ];
      const path = guesses[i % guesses.length];
      const res = await fetch(`${stack.apps.baseUrl}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-forwarded-for': `10.9.${Math.floor(i / 250)}.${i % 250}`,
        },
        body: 'List-Unsubscribe=One-Click',
      });
      statuses.add(res.status);
    }
    expect([...statuses].every((s) => s === 404)).toBe(true);
    const [row] = await query<{ status: string }>(
      stack.db.url,
      `SELECT s.status FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email = $1`,
      [email],
    );
    expect(row.status).toBe('active');
  });

  describe('no enumeration: the answer and its timing do not depend on what is known about an address', () => {
    const PER_STATE = 40;
    const WARM_UP = 8;
    let ip = 0;
    /** A fresh client IP per request: the per-IP limit is not what is measured here. */
    const nextIp = () => `198.18.${Math.floor((ip += 1) / 250)}.${ip % 250}`;
    const subscribe = (email: string) =>
      postJson(`${stack.apps.baseUrl}/v1/subscriptions`, { email }, { 'x-forwarded-for': nextIp() });

    /** `count` addresses in each state, set up the way readers and bounces put them there. */
    async function addresses(tag: string, count: number): Promise<Record<State, string[]>> {
      const out = {} as Record<State, string[]>;
      for (const state of STATES)
        out[state] = Array.from({ length: count }, (_, i) => `${tag}-${state}-${i}@example.com`);
      for (const state of STATES.filter((x) => x !== 'new'))
        for (const email of out[state]) expect((await subscribe(email)).status).toBe(202);
      await query(
        stack.db.url,
        `UPDATE subscriptions SET status = 'active', confirmed_at = now()
         WHERE subscriber_id IN (SELECT id FROM subscribers WHERE email = ANY($1::text[]))`,
        [[...out.active, ...out.unsubscribed]],
      );
      await query(
        stack.db.url,
        `UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()
         WHERE subscriber_id IN (SELECT id FROM subscribers WHERE email = ANY($1::text[]))`,
        [out.unsubscribed],
      );
      // A hard bounce: the keyed hash in the suppression list, the subscriber marked bounced.
      for (const email of out.suppressed)
        await query(
          stack.db.url,
          `INSERT INTO suppressions (email_hash, reason, detail) VALUES ($1, 'bounced', '550 5.1.1')`,
          [emailHash(stack.apps.config.appSecret, email)],
        );
      await query(stack.db.url, `UPDATE subscribers SET status = 'bounced' WHERE email = ANY($1::text[])`, [
        out.suppressed,
      ]);
      return out;
    }

    it('subscribe answers byte-identically, as JSON and as a page, in all five states', async () => {
      const set = await addresses('same', 2);
      const json: string[] = [];
      const html: string[] = [];
      for (const state of STATES) {
        const a = await subscribe(set[state][0]);
        json.push(`${a.status} ${a.headers.get('content-type')} ${await a.text()}`);
        const b = await postForm(
          `${stack.apps.baseUrl}/v1/subscriptions`,
          { email: set[state][1] },
          {
            accept: 'text/html',
            'x-forwarded-for': nextIp(),
          },
        );
        html.push(`${b.status} ${b.headers.get('location')} ${b.headers.get('content-type')} ${await b.text()}`);
      }
      expect(new Set(json)).toEqual(new Set(['202 application/json; charset=utf-8 {"status":"pending"}']));
      expect(new Set(html).size).toBe(1);
      // A form post is sent on to the check-inbox page (303), the same for every state.
      expect(html[0]).toMatch(/^303 \/subscribe\/check-inbox/);
    });

    it('one-click unsubscribe answers byte-identically for pending, active, unsubscribed and suppressed readers', async () => {
      const set = await addresses('unsub', 1);
      const answers: string[] = [];
      for (const state of STATES.filter((x) => x !== 'new')) {
        const [{ id }] = await query<{ id: string }>(
          stack.db.url,
          `SELECT s.id::text AS id FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id WHERE u.email = $1`,
          [set[state][0]],
        );
        for (const accept of ['application/json', 'text/html']) {
          const res = await postForm(
            `${stack.apps.baseUrl}/unsubscribe/${signToken(stack.apps.config.appSecret, 'unsubscribe', id)}`,
            { 'List-Unsubscribe': 'One-Click' },
            { accept, 'x-forwarded-for': nextIp() },
          );
          answers.push(`${accept}: ${res.status} ${res.headers.get('content-type')} ${await res.text()}`);
        }
      }
      expect(new Set(answers.filter((a) => a.startsWith('application/json'))).size).toBe(1);
      expect(new Set(answers.filter((a) => a.startsWith('text/html'))).size).toBe(1);
      expect(answers[0]).toContain('200');
    });

    it(`no timing tell: median subscribe latency differs by < 10 ms across the five states (${PER_STATE} each, interleaved)`, async () => {
      const set = await addresses('timing', PER_STATE + WARM_UP);
      const times: Record<State, number[]> = { new: [], pending: [], active: [], unsubscribed: [], suppressed: [] };
      for (let round = 0; round < PER_STATE + WARM_UP; round += 1) {
        // Round-robin, starting one state later each round: no state always runs first or last.
        for (let k = 0; k < STATES.length; k += 1) {
          const state = STATES[(round + k) % STATES.length];
          const started = performance.now();
          const res = await subscribe(set[state][round]);
          await res.arrayBuffer();
          const ms = performance.now() - started;
          expect(res.status).toBe(202);
          if (round >= WARM_UP) times[state].push(ms);
        }
      }
      const medians = Object.fromEntries(STATES.map((s) => [s, Math.round(median(times[s]) * 100) / 100])) as Record<
        State,
        number
      >;
      const spread = Math.max(...Object.values(medians)) - Math.min(...Object.values(medians));
      record('subscribeTiming', {
        requestsPerState: PER_STATE,
        medianMs: medians,
        maxMedianDifferenceMs: Math.round(spread * 100) / 100,
      });
      expect(spread).toBeLessThan(10);
    }, 120_000);
  });
});
