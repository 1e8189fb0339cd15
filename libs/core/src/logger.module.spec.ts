import { isStartUpNoise, logUrl } from './logger.module.js';

describe('request URLs in the log', () => {
  it.each([
    ['/confirm/abc123', '/confirm/…'],
    ['/unsubscribe/tok.sig?x=1', '/unsubscribe/…?…'],
    ['/guides/natural-back-pain-relief/tok', '/guides/natural-back-pain-relief/…'],
    ['/v1/webhooks/ses?token=secret', '/v1/webhooks/ses?…'],
    ['/c/1.2.AAAAAAAAAAAAAAAA.3.AAAAAAAAAAAAAAAA', '/c/…'],
    ['/v1/subscriptions', '/v1/subscriptions'],
  ])('%s → %s', (url, logged) => {
    expect(logUrl(url)).toBe(logged);
  });
});

describe('the dev console leaves out Nest start-up chatter', () => {
  it.each([
    [[{ context: 'RouterExplorer' }, 'Mapped {/v1/subscriptions, POST} route'], true],
    [[{ context: 'InstanceLoader' }, 'DbModule dependencies initialized'], true],
    [[{ context: 'RoutesResolver' }, 'SubscriptionsController {/}:'], true],
    [[{ context: 'SchedulesService' }, 'Schedules in sync'], false],
    [['a plain message'], false],
    [[{ req: { id: 1 } }, 'request completed'], false],
  ])('%j → %s', (args, noise) => {
    expect(isStartUpNoise(args)).toBe(noise);
  });
});
