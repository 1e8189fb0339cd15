/**
 * The baseline for benchmark 4, run as its own child process: bare Fastify + pg doing the same
 * writes as POST /v1/subscriptions in one transaction (subscriber upsert, subscription upsert,
 * consent record, outbox row) — one prepared statement, one round trip — with no framework,
 * validation library, ORM or logging around them.
 * Env: DATABASE_URL. Tells the parent { type: 'ready', port } over IPC.
 */
import Fastify from 'fastify';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import pg from 'pg';

const CONSENT_TEXT = 'Subscribe to our weekly newsletter and get our FREE Guide.';
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const app = Fastify({ logger: false, bodyLimit: 100 * 1024 });
const ids = new Map<string, number>();

app.post('/v1/subscriptions', async (req, reply) => {
  const body = req.body as { email?: unknown; newsletters?: unknown } | undefined;
  const email = typeof body?.email === 'string' ? body.email.trim().toLowerCase() : '';
  if (!/^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/.test(email) || email.length > 254) {
    return reply.status(400).send({ statusCode: 400, message: ['email must be an email address'] });
  }
  const slugs = Array.isArray(body?.newsletters) ? (body.newsletters as string[]) : ['spine-health'];
  const newsletterIds = slugs.map((s) => ids.get(s)).filter((x): x is number => x !== undefined);
  if (newsletterIds.length !== slugs.length)
    return reply.status(400).send({ statusCode: 400, message: ['newsletters'] });
  // The four inserts as one statement (atomic on its own), prepared once per connection: one
  // round trip per sign-up, the least a handler can do for these writes.
  await pool.query({
    name: 'subscribe',
    text: `WITH s AS (
             INSERT INTO subscribers (email) VALUES ($1)
             ON CONFLICT (email) DO UPDATE SET updated_at = now() RETURNING id),
           sub AS (
             INSERT INTO subscriptions (subscriber_id, newsletter_id, status)
             SELECT s.id, nid, 'pending' FROM s, unnest($2::int[]) AS nid
             ON CONFLICT (subscriber_id, newsletter_id) DO NOTHING),
           c AS (
             INSERT INTO consent_records (subscriber_id, newsletter_id, action, ip, user_agent, consent_text, consent_version)
             SELECT s.id, nid, 'subscribe', $3::inet, $4, $5, 'bench' FROM s, unnest($2::int[]) AS nid)
           INSERT INTO outbox (id, type, payload)
           SELECT $6, 'subscription.requested', jsonb_build_object('subscriberId', s.id::text, 'newsletterIds', to_jsonb($2::int[]))
           FROM s`,
    values: [email, newsletterIds, req.ip, req.headers['user-agent'] ?? null, CONSENT_TEXT, randomUUID()],
  });
  return reply.status(202).send({ status: 'pending' });
});

const found = await pool.query<{ id: number; slug: string }>('SELECT id, slug FROM newsletters');
for (const r of found.rows) ids.set(r.slug, r.id);
await app.listen({ port: 0, host: '127.0.0.1' });
process.send?.({ type: 'ready', port: (app.server.address() as AddressInfo).port });
process.on('SIGTERM', () => {
  void app
    .close()
    .then(() => pool.end())
    .finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
