import type { FastifyRequest } from 'fastify';
import type { ConsentContext } from '#subscriptions/subscriptions.repository.js';

function header(req: FastifyRequest, name: string): string | null {
  const v = req.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s ? s.slice(0, 1000) : null;
}

/** Who asked: the client IP (X-Forwarded-For only when TRUST_PROXY=true, via Fastify's trustProxy). */
export function consentContext(req: FastifyRequest, sourceUrl?: string | null): ConsentContext {
  return { ip: req.ip ?? null, userAgent: header(req, 'user-agent'), sourceUrl: sourceUrl ?? header(req, 'referer') };
}

/** A browser form post (or a client asking for HTML) gets pages rather than JSON. */
export function wantsHtml(req: FastifyRequest): boolean {
  const ct = String(req.headers['content-type'] ?? '');
  if (ct.startsWith('application/x-www-form-urlencoded') || ct.startsWith('multipart/form-data')) return true;
  const accept = String(req.headers.accept ?? '');
  return accept.includes('text/html') && !accept.includes('application/json');
}

/**
 * A browser (it asks for HTML): a successful form post is sent on to a page (303). Any other
 * client, a form post included, gets the JSON answer the contract names.
 */
export function asksForHtml(req: FastifyRequest): boolean {
  const accept = String(req.headers.accept ?? '');
  return accept.includes('text/html') && !accept.includes('application/json');
}

export function wantsJson(req: FastifyRequest): boolean {
  return String(req.headers.accept ?? '').includes('application/json');
}
