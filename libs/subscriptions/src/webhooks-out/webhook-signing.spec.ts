import { Webhook } from 'standardwebhooks';
import { newWebhookSecret, openSecret, sealSecret, signWebhook } from './webhook-signing.js';

describe('webhook signing', () => {
  it('makes whsec_ secrets of 32 random bytes', () => {
    const a = newWebhookSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.slice(6), 'base64')).toHaveLength(32);
    expect(newWebhookSecret()).not.toBe(a);
  });

  it('signs as the Standard Webhooks reference library verifies', () => {
    const secret = newWebhookSecret();
    const body = JSON.stringify({ type: 'digest.sent', timestamp: '2026-01-01T00:00:00.000Z', data: { sent: 3 } });
    const ts = Math.floor(Date.now() / 1000);
    const sig = signWebhook(secret, 'msg-1', ts, body);
    expect(sig).toBe(new Webhook(secret).sign('msg-1', new Date(ts * 1000), body));
    const headers = { 'webhook-id': 'msg-1', 'webhook-timestamp': String(ts), 'webhook-signature': sig };
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(newWebhookSecret()).verify(body, headers)).toThrow();
    expect(() => new Webhook(secret).verify(body.replace('3', '4'), headers)).toThrow();
  });

  it('seals secrets so only the same APP_SECRET opens them', () => {
    const secret = newWebhookSecret();
    const sealed = sealSecret('app-secret-one-0123456789', secret);
    expect(sealed).not.toContain(secret.slice(6));
    expect(sealSecret('app-secret-one-0123456789', secret)).not.toBe(sealed);
    expect(openSecret('app-secret-one-0123456789', sealed)).toBe(secret);
    expect(() => openSecret('app-secret-two-0123456789', sealed)).toThrow(/APP_SECRET/);
    const [v, iv, tag, ct] = sealed.split(':');
    const flipped = Buffer.from(ct, 'base64');
    flipped[0] ^= 1;
    expect(() => openSecret('app-secret-one-0123456789', [v, iv, tag, flipped.toString('base64')].join(':'))).toThrow();
    expect(() => openSecret('app-secret-one-0123456789', 'plain')).toThrow(/format/);
  });
});
