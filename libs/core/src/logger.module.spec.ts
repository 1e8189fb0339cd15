import { logUrl } from './logger.module.js';

describe('request URLs in the log', () => {
  it.each([
    ['/confirm/abc123', '/confirm/…'],
    ['/unsubscribe/tok.sig?x=1', '/unsubscribe/…?…'],
    ['/guides/natural-back-pain-relief/tok', '/guides/natural-back-pain-relief/…'],
    ['/v1/webhooks/ses?token=secret', '/v1/webhooks/ses?…'],
    ['/v1/subscriptions', '/v1/subscriptions'],
  ])('%s → %s', (url, logged) => {
    expect(logUrl(url)).toBe(logged);
  });
});
