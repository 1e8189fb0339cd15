/**
 * The baseline for the clicks benchmark, run as its own child process: bare Fastify answering
 * GET /c/:token the way the api does — the same token check (`verifyClickToken`, two HMACs) and the
 * same 302 with its headers — but to a fixed Location and with no database: no URL lookup, no
 * click record, no framework, validation or logging around it.
 * Env: APP_SECRET. Tells the parent { type: 'ready', port } over IPC.
 */
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { clickKey, verifyClickToken } from '#digests/click-tokens.js';

const LOCATION = 'https://www.spine-health.example/bench/clicks/article';
const key = clickKey(process.env.APP_SECRET ?? '');
const app = Fastify({ logger: false });

app.get('/c/:token', async (req, reply) => {
  const { token } = req.params as { token: string };
  const t = token.length > 200 ? null : verifyClickToken(key, token);
  if (!t) return reply.status(404).type('text/html; charset=utf-8').send('This link is not valid.');
  return reply
    .status(302)
    .header('Location', LOCATION)
    .header('Cache-Control', 'private, no-store')
    .header('Referrer-Policy', 'no-referrer')
    .send();
});

await app.listen({ port: 0, host: '127.0.0.1' });
process.send?.({ type: 'ready', port: (app.server.address() as AddressInfo).port });
process.on('SIGTERM', () => {
  void app.close().finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
