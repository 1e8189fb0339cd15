import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * Security headers for everything under /admin, set in one onRequest hook so that pages, errors,
 * redirects and JSON answers all carry them. A route may still replace one (the digest preview
 * sets its own CSP so the console may frame it).
 */

/**
 * The console pages' CSP: nothing loads from elsewhere; scripts only by the hashes of the
 * templates' own inline scripts; styles inline (the templates use <style> and style=); fetches,
 * forms and the preview frames stay on this origin; no page may be framed.
 */
export function consoleCsp(scriptHashes: readonly string[]): string {
  return [
    "default-src 'none'",
    scriptHashes.length > 0 ? `script-src ${scriptHashes.map((h) => `'${h}'`).join(' ')}` : "script-src 'none'",
    "style-src 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * bull-board's own UI: its scripts, styles and fonts are its own (and Google Fonts), so only what
 * cannot break it: no framing, no plugins, no foreign <base> or form targets.
 */
export const QUEUE_BOARD_CSP = [
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
} as const;

/** A request's path as sent, and percent-decoded (as the router may read it). */
function pathsOf(req: FastifyRequest): { raw: string; decoded: string } {
  const raw = req.url.split(/[?#]/, 1)[0] ?? '';
  try {
    return { raw, decoded: decodeURIComponent(raw) };
  } catch {
    return { raw, decoded: raw };
  }
}

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

/**
 * Adds the hook on the root instance. It must run before the queue board's plugin scope is
 * registered: a Fastify scope copies its parent's hooks when it is created.
 */
export function addConsoleSecurityHeaders(
  instance: FastifyInstance,
  opts: { pagesCsp: () => string; boardPath: string },
): void {
  instance.addHook('onRequest', async (req, reply) => {
    const { raw, decoded } = pathsOf(req);
    if (!under(raw, '/admin') && !under(decoded, '/admin')) return;
    reply.headers(COMMON_HEADERS);
    // The board's looser policy only for its literal path: any odd spelling gets the strict one.
    reply.header('content-security-policy', under(raw, opts.boardPath) ? QUEUE_BOARD_CSP : opts.pagesCsp());
  });
}
