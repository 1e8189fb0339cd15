import {
  ConfigError,
  DEFAULT_POSTAL_ADDRESS,
  DEFAULT_SNS_ORIGIN_PATTERN,
  loadConfig,
  type AppConfig,
} from './config.js';

type Env = Record<string, string | undefined>;

const MINIMAL: Env = {
  NODE_ENV: 'development',
  DATABASE_URL: 'postgres://user:pass@localhost:5432/mailroom',
  SMTP_URL: 'smtp://localhost:1025',
};
const SECRET = 's'.repeat(32);

function load(extra: Env = {}, base: Env = MINIMAL): AppConfig {
  return loadConfig({ ...base, ...extra });
}

/** Runs loadConfig and returns the ConfigError it must throw. */
function configError(env: Env): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

describe('loadConfig', () => {
  describe('defaults from a minimal environment', () => {
    const config = load();

    it('uses the documented defaults', () => {
      expect(config.env).toBe('development');
      expect(config.publicUrl).toBe('http://localhost:3000');
      expect(config.port).toBe(3000);
      expect(config.sendRatePerSecond).toBe(50);
      expect(config.trustProxy).toBe(false);
      expect(config.logLevel).toBe('info');
      expect(config.postalAddress).toBe(DEFAULT_POSTAL_ADDRESS);
      expect(config.mailFrom).toBeUndefined();
      expect(config.adminApiKey).toBeUndefined();
      expect(config.metrics.token).toBeUndefined();
      expect(config.smtp).toMatchObject({ maxConnections: 5, threads: 2 });
    });

    it('passes the database and SMTP URLs through', () => {
      expect(config.db.url).toBe(MINIMAL.DATABASE_URL);
      expect(config.smtp.url).toBe(MINIMAL.SMTP_URL);
    });

    it("uses the 'postgres' queue backend without REDIS_URL", () => {
      expect(config.queue.backend).toBe('postgres');
      expect(config.queue.redisUrl).toBeUndefined();
    });

    it('generates a random APP_SECRET of at least 32 characters outside production', () => {
      expect(config.appSecret.length).toBeGreaterThanOrEqual(32);
      expect(load().appSecret).not.toBe(config.appSecret);
      expect(load({ NODE_ENV: 'test' }).appSecret.length).toBeGreaterThanOrEqual(32);
    });

    it('does not read process.env when an env object is given', () => {
      const saved = process.env.PORT;
      process.env.PORT = '4321';
      try {
        expect(load().port).toBe(3000);
      } finally {
        if (saved === undefined) delete process.env.PORT;
        else process.env.PORT = saved;
      }
    });
  });

  it("uses the 'redis' queue backend with REDIS_URL", () => {
    const config = load({ REDIS_URL: 'redis://localhost:6379' });
    expect(config.queue.backend).toBe('redis');
    expect(config.queue.redisUrl).toBe('redis://localhost:6379');
    expect(load({ REDIS_URL: 'rediss://cache.example:6380' }).queue.backend).toBe('redis');
  });

  it('treats empty and blank variables as unset', () => {
    const config = load({ REDIS_URL: '', PORT: '   ', LOG_LEVEL: '', PUBLIC_URL: ' ' });
    expect(config.queue.backend).toBe('postgres');
    expect(config.port).toBe(3000);
    expect(config.logLevel).toBe('info');
    expect(config.publicUrl).toBe('http://localhost:3000');
  });

  it('reads valid values', () => {
    const config = load({
      NODE_ENV: 'production',
      APP_SECRET: SECRET,
      ADMIN_API_KEY: 'k'.repeat(24),
      METRICS_TOKEN: 'm'.repeat(32),
      PORT: '8080',
      SEND_RATE_PER_SECOND: '200',
      TRUST_PROXY: 'true',
      LOG_LEVEL: 'warn',
      PUBLIC_URL: 'https://news.example.com',
      MAIL_FROM: 'Mailroom <news@example.com>',
      DATABASE_URL: 'postgresql://db/mailroom',
      SMTP_URL: 'smtps://user:pw@smtp.example.com:465',
      SMTP_POOL_SIZE: '8',
      SMTP_THREADS: '0',
    });
    expect(config).toMatchObject({
      env: 'production',
      appSecret: SECRET,
      adminApiKey: 'k'.repeat(24),
      metrics: { token: 'm'.repeat(32) },
      port: 8080,
      sendRatePerSecond: 200,
      trustProxy: 1,
      logLevel: 'warn',
      publicUrl: 'https://news.example.com',
      mailFrom: 'Mailroom <news@example.com>',
      db: { url: 'postgresql://db/mailroom' },
      smtp: { url: 'smtps://user:pw@smtp.example.com:465', maxConnections: 8, threads: 0 },
    });
  });

  it.each<[string, false | number | string[]]>([
    ['true', 1],
    ['1', 1],
    ['2', 2],
    ['false', false],
    ['0', false],
    ['10.0.0.0/8, 192.168.1.5', ['10.0.0.0/8', '192.168.1.5']],
    ['::1,fd00::/8', ['::1', 'fd00::/8']],
  ])('TRUST_PROXY=%s → %j (a hop count or the proxies, never every hop)', (raw, expected) => {
    expect(load({ TRUST_PROXY: raw }).trustProxy).toEqual(expected);
  });

  it('feeds stay off private addresses and odd ports unless configured', () => {
    expect(load({}).feeds).toMatchObject({ allowPrivate: false, allowedPorts: [80, 443] });
    expect(load({ FEED_ALLOW_PRIVATE: 'true', FEED_ALLOWED_PORTS: '80,443,8080' }).feeds).toMatchObject({
      allowPrivate: true,
      allowedPorts: [80, 443, 8080],
    });
    expect(load({ FEED_ALLOWED_PORTS: '*' }).feeds.allowedPorts).toBe('any');
  });

  it('bounces: off unless BOUNCE_DOMAIN is set; the port defaults to 2525, the bind address to every interface', () => {
    expect(load({}).bounces).toBeUndefined();
    expect(load({ BOUNCE_DOMAIN: 'Bounces.Example.com.' }).bounces).toEqual({
      domain: 'bounces.example.com',
      port: 2525,
      host: '0.0.0.0',
      maxBytes: 1_048_576,
    });
    // A one-label name (a test rig's `localhost`) is a host name too.
    expect(load({ BOUNCE_DOMAIN: 'localhost' }).bounces?.domain).toBe('localhost');
    expect(
      load({ BOUNCE_DOMAIN: 'bounces.example.com', BOUNCE_SMTP_PORT: '2626', BOUNCE_SMTP_HOST: '127.0.0.1' }).bounces,
    ).toMatchObject({ port: 2626, host: '127.0.0.1' });
  });

  it('outgoing webhooks: a 10 s POST, retries from 10 s for a day, kept 30 days; bad values name the variable', () => {
    expect(load({}).webhooksOut).toEqual({
      pollMs: 1000,
      timeoutMs: 10_000,
      retryBaseMs: 10_000,
      retryWindowSeconds: 86_400,
      keepDays: 30,
    });
    expect(load({ WEBHOOK_TIMEOUT_MS: '2500', WEBHOOK_KEEP_DAYS: '90' }).webhooksOut).toMatchObject({
      timeoutMs: 2500,
      keepDays: 90,
    });
    expect(configError({ ...MINIMAL, WEBHOOK_TIMEOUT_MS: 'soon' }).message).toContain('WEBHOOK_TIMEOUT_MS');
    expect(configError({ ...MINIMAL, WEBHOOK_RETRY_WINDOW_SECONDS: '0' }).message).toContain(
      'WEBHOOK_RETRY_WINDOW_SECONDS',
    );
  });

  it.each<[string, string]>([
    ['http://example.com/', 'http://example.com'],
    ['https://example.com///', 'https://example.com'],
    ['https://example.com/news/', 'https://example.com/news'],
    ['https://example.com/news', 'https://example.com/news'],
  ])('PUBLIC_URL %s → %s (trailing slash removed)', (raw, expected) => {
    expect(load({ PUBLIC_URL: raw }).publicUrl).toBe(expected);
  });

  describe('bad variables throw a ConfigError naming the variable', () => {
    it.each<[string, Env]>([
      ['PORT', { PORT: 'abc' }],
      ['PORT', { PORT: '70000' }],
      ['PORT', { PORT: '-1' }],
      ['PORT', { PORT: '80.5' }],
      ['SEND_RATE_PER_SECOND', { SEND_RATE_PER_SECOND: '0' }],
      ['SMTP_THREADS', { SMTP_THREADS: '-1' }],
      ['SMTP_THREADS', { SMTP_THREADS: 'two' }],
      ['TRUST_PROXY', { TRUST_PROXY: 'maybe' }],
      ['TRUST_PROXY', { TRUST_PROXY: 'yes' }],
      ['TRUST_PROXY', { TRUST_PROXY: '10.0.0.0/33' }],
      ['TRUST_PROXY', { TRUST_PROXY: 'proxy.internal' }],
      ['FEED_ALLOWED_PORTS', { FEED_ALLOWED_PORTS: '80,http' }],
      ['FEED_ALLOWED_PORTS', { FEED_ALLOWED_PORTS: '0' }],
      ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
      ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }],
      ['DATABASE_URL', { DATABASE_URL: 'not a url' }],
      ['REDIS_URL', { REDIS_URL: 'http://x' }],
      ['SMTP_URL', { SMTP_URL: 'not a url' }],
      ['SMTP_URL', { SMTP_URL: 'http://smtp.example.com' }],
      ['PUBLIC_URL', { PUBLIC_URL: 'ftp://x' }],
      ['PUBLIC_URL', { PUBLIC_URL: 'javascript:alert(1)' }],
      ['APP_SECRET', { APP_SECRET: 'too-short' }],
      ['APP_SECRET', { APP_SECRET: 's'.repeat(31) }],
      ['ADMIN_API_KEY', { ADMIN_API_KEY: 'short-key' }],
      ['ADMIN_API_KEY', { ADMIN_API_KEY: 'k'.repeat(23) }],
      ['METRICS_TOKEN', { METRICS_TOKEN: 'm'.repeat(23) }],
      ['METRICS_TOKEN', { METRICS_TOKEN: `${'m'.repeat(20)} ${'m'.repeat(20)}` }],
      ['MAIL_FROM', { MAIL_FROM: 'Mailroom <news@example.com>\r\nBcc: victim@example.com' }],
      ['MAIL_FROM', { MAIL_FROM: 'news@example.com\nBcc: victim@example.com' }],
      ['POSTAL_ADDRESS', { POSTAL_ADDRESS: '1 Main St\r\nBcc: victim@example.com' }],
      ['NODE_ENV', { NODE_ENV: 'staging' }],
      ['BOUNCE_SMTP_PORT', { BOUNCE_SMTP_PORT: '2525' }],
      ['BOUNCE_SMTP_HOST', { BOUNCE_SMTP_HOST: '127.0.0.1' }],
      ['BOUNCE_DOMAIN', { BOUNCE_DOMAIN: 'bounces example.com' }],
      ['BOUNCE_DOMAIN', { BOUNCE_DOMAIN: '-bounces.example.com' }],
      ['BOUNCE_DOMAIN', { BOUNCE_DOMAIN: 'b@example.com' }],
      ['BOUNCE_SMTP_PORT', { BOUNCE_DOMAIN: 'bounces.example.com', BOUNCE_SMTP_PORT: '0' }],
      ['BOUNCE_SMTP_PORT', { BOUNCE_DOMAIN: 'bounces.example.com', BOUNCE_SMTP_PORT: 'smtp' }],
      ['BOUNCE_SMTP_HOST', { BOUNCE_DOMAIN: 'bounces.example.com', BOUNCE_SMTP_HOST: 'worker.internal' }],
    ])('%s (%j)', (variable, extra) => {
      const err = configError({ ...MINIMAL, ...extra });
      expect(err.variable).toBe(variable);
      expect(err.message).toContain(variable);
      expect(err.name).toBe('ConfigError');
      expect(err).toBeInstanceOf(Error);
    });
  });

  it('defaults to production, where APP_SECRET is required', () => {
    const err = configError({ DATABASE_URL: MINIMAL.DATABASE_URL, SMTP_URL: MINIMAL.SMTP_URL });
    expect(err.message).toContain('APP_SECRET');
    const env = { DATABASE_URL: MINIMAL.DATABASE_URL, SMTP_URL: MINIMAL.SMTP_URL, APP_SECRET: SECRET };
    expect(loadConfig({ ...env, PUBLIC_URL: 'https://news.example.com' }).env).toBe('production');
  });

  describe('PUBLIC_URL in production: https on a real host name', () => {
    const prod = { ...MINIMAL, NODE_ENV: 'production', APP_SECRET: SECRET };
    it.each([
      [undefined, /PUBLIC_URL is required in production/],
      ['http://news.example.com', /PUBLIC_URL must be https in production/],
      ['http://127.0.0.1:3301', /PUBLIC_URL must be https in production/],
      ['https://127.0.0.1', /PUBLIC_URL must name a real host in production, got "127.0.0.1"/],
      ['https://[::1]:8443', /PUBLIC_URL must name a real host/],
      ['https://localhost:3000', /PUBLIC_URL must name a real host/],
      ['https://mailroom', /PUBLIC_URL must name a real host/],
    ])('%s is refused', (value, message) => {
      const err = configError({ ...prod, PUBLIC_URL: value });
      expect(err.variable).toBe('PUBLIC_URL');
      expect(err.message).toMatch(message);
      if (value) expect(err.message).toContain('PUBLIC_URL_ALLOW_HTTP');
    });
    it('https on a host name starts; PUBLIC_URL_ALLOW_HTTP=true lets a test rig use http', () => {
      expect(loadConfig({ ...prod, PUBLIC_URL: 'https://news.example.com/' }).publicUrl).toBe(
        'https://news.example.com',
      );
      const rig = loadConfig({ ...prod, PUBLIC_URL: 'http://127.0.0.1:3301', PUBLIC_URL_ALLOW_HTTP: 'true' });
      expect(rig.publicUrl).toBe('http://127.0.0.1:3301');
      expect(configError({ ...prod, PUBLIC_URL_ALLOW_HTTP: 'maybe' }).variable).toBe('PUBLIC_URL_ALLOW_HTTP');
    });
    it('the CLI, which makes no links, needs none', () => {
      expect(loadConfig(prod, { linksUnused: true }).env).toBe('production');
    });
    it('PRIVACY_URL must be an http(s) URL', () => {
      expect(load({ PRIVACY_URL: 'https://www.example.com/privacy' }).privacyUrl).toBe(
        'https://www.example.com/privacy',
      );
      expect(configError({ ...MINIMAL, PRIVACY_URL: 'javascript:alert(1)' }).variable).toBe('PRIVACY_URL');
    });
  });

  it('production without APP_SECRET throws naming APP_SECRET', () => {
    const err = configError({ ...MINIMAL, NODE_ENV: 'production' });
    expect(err.variable).toBe('APP_SECRET');
    expect(err.message).toContain('APP_SECRET');
    expect(() =>
      load({ NODE_ENV: 'production', APP_SECRET: SECRET, PUBLIC_URL: 'https://news.example.com' }),
    ).not.toThrow();
  });

  it('missing DATABASE_URL throws naming DATABASE_URL', () => {
    const err = configError({ SMTP_URL: MINIMAL.SMTP_URL });
    expect(err.variable).toBe('DATABASE_URL');
    expect(err.message).toContain('DATABASE_URL');
    expect(configError({ SMTP_URL: MINIMAL.SMTP_URL, DATABASE_URL: '  ' }).variable).toBe('DATABASE_URL');
  });

  it('missing SMTP_URL throws naming SMTP_URL', () => {
    const err = configError({ DATABASE_URL: MINIMAL.DATABASE_URL });
    expect(err.variable).toBe('SMTP_URL');
    expect(err.message).toContain('SMTP_URL');
  });

  it('an empty environment is rejected', () => {
    expect(() => loadConfig({})).toThrow(ConfigError);
  });

  it('trusts only https Amazon SNS hosts for SES webhooks unless told otherwise', () => {
    const def = load().webhooks;
    expect(def.sesSnsOriginPattern).toEqual(new RegExp(DEFAULT_SNS_ORIGIN_PATTERN));
    expect(def.sesSnsOriginPattern.test('https://sns.eu-west-1.amazonaws.com')).toBe(true);
    expect(def.sesSnsOriginPattern.test('http://sns.eu-west-1.amazonaws.com')).toBe(false);
    expect(def.sesTopicArns).toBeUndefined();
    const custom = load({
      SES_SNS_ORIGIN_PATTERN: '^http://127\\.0\\.0\\.1:\\d+$',
      SES_SNS_TOPIC_ARNS: ' arn:aws:sns:us-east-1:1:a , arn:aws:sns:us-east-1:1:b ,',
    }).webhooks;
    expect(custom.sesSnsOriginPattern.test('http://127.0.0.1:8080')).toBe(true);
    expect(custom.sesTopicArns).toEqual(['arn:aws:sns:us-east-1:1:a', 'arn:aws:sns:us-east-1:1:b']);
    expect(configError({ ...MINIMAL, SES_SNS_ORIGIN_PATTERN: '(' }).variable).toBe('SES_SNS_ORIGIN_PATTERN');
  });
  describe('SMTP_ROUTES', () => {
    it('is empty when unset', () => {
      expect(load().smtp.routes.size).toBe(0);
    });

    it('reads the contract form (name → URL) and the object form with a rate and connections', () => {
      const routes = load({
        SEND_RATE_PER_SECOND: '50',
        SMTP_POOL_SIZE: '4',
        SMTP_ROUTES: JSON.stringify({
          spine: 'smtp://mta1.example.com:2525',
          'arthritis-health': { url: 'smtps://user:p%40ss@mta2.example.com', rate: 20, maxConnections: 2 },
        }),
      }).smtp.routes;
      expect([...routes.keys()]).toEqual(['spine', 'arthritis-health']);
      expect(routes.get('spine')).toEqual({
        name: 'spine',
        url: 'smtp://mta1.example.com:2525',
        rate: undefined,
        maxConnections: 4,
      });
      expect(routes.get('arthritis-health')).toEqual({
        name: 'arthritis-health',
        url: 'smtps://user:p%40ss@mta2.example.com',
        rate: 20,
        maxConnections: 2,
      });
    });

    it('a rate equal to the global one is allowed', () => {
      const routes = load({ SEND_RATE_PER_SECOND: '30', SMTP_ROUTES: '{"a":{"url":"smtp://h","rate":30}}' }).smtp
        .routes;
      expect(routes.get('a')?.rate).toBe(30);
    });

    it.each<[string, string, RegExp]>([
      ['invalid JSON', '{"a": smtp://h}', /not valid JSON/],
      ['an array', '["smtp://h"]', /must be a JSON object/],
      ['a string', '"smtp://h"', /must be a JSON object/],
      ['null', 'null', /must be a JSON object/],
      ['a bad name', '{"a b":"smtp://h"}', /route name "a b"/],
      ['a name starting with a dash', '{"-a":"smtp://h"}', /route name "-a"/],
      ['the prototype key', '{"__proto__":"smtp://h"}', /route name "__proto__"/],
      ['a URL that is not one', '{"a":"not a url"}', /route "a" must have an smtp/],
      ['an http URL', '{"a":"http://h"}', /route "a" must have an smtp/],
      ['a number', '{"a":25}', /route "a" must be an smtp/],
      ['an object without url', '{"a":{"rate":5}}', /route "a" must have an smtp/],
      ['an unknown field', '{"a":{"url":"smtp://h","speed":5}}', /unknown field "speed"/],
      ['a rate of zero', '{"a":{"url":"smtp://h","rate":0}}', /rate must be a whole number/],
      ['a fractional rate', '{"a":{"url":"smtp://h","rate":2.5}}', /rate must be a whole number/],
      ['a rate as a string', '{"a":{"url":"smtp://h","rate":"5"}}', /rate must be a whole number/],
      [
        'a rate above SEND_RATE_PER_SECOND',
        '{"a":{"url":"smtp://h","rate":51}}',
        /rate 51 is above SEND_RATE_PER_SECOND \(50\)/,
      ],
      ['too many connections', '{"a":{"url":"smtp://h","maxConnections":101}}', /maxConnections must be/],
    ])('stops on %s, naming SMTP_ROUTES', (_what, value, message) => {
      const err = configError({ ...MINIMAL, SMTP_ROUTES: value });
      expect(err.variable).toBe('SMTP_ROUTES');
      expect(err.message).toMatch(/^Invalid configuration: SMTP_ROUTES /);
      expect(err.message).toMatch(message);
    });

    it('never repeats a route URL (it may hold a password) in its message', () => {
      const err = configError({ ...MINIMAL, SMTP_ROUTES: '{"a":"ftp://user:secret-pw@h"}' });
      expect(err.message).not.toContain('secret-pw');
    });
  });

  describe('Redis Sentinel and Cluster', () => {
    it('REDIS_SENTINELS with REDIS_SENTINEL_NAME selects the Redis backend on Sentinel', () => {
      const config = load({
        REDIS_SENTINELS: ' 10.0.0.1:26379, sentinel-b:26380,[::1]:26381,sentinel_c ',
        REDIS_SENTINEL_NAME: 'mymaster',
        REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
      });
      expect(config.queue.backend).toBe('redis');
      expect(config.queue.prefix).toBe('mailroom');
      expect(config.queue.redis).toEqual({
        mode: 'sentinel',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: 'sentinel-b', port: 26380 },
          { host: '::1', port: 26381 },
          { host: 'sentinel_c', port: 26379 },
        ],
        name: 'mymaster',
        sentinelPassword: 'sentinel-secret',
        db: 0,
        tls: false,
        username: undefined,
        password: undefined,
      });
    });

    it("takes the data nodes' credentials, database and TLS from REDIS_URL, never its host", () => {
      const sentinel = load({
        REDIS_SENTINELS: 's1:26379',
        REDIS_SENTINEL_NAME: 'mymaster',
        REDIS_URL: 'rediss://app:p%40ss@ignored.example:6390/3',
      }).queue.redis;
      expect(sentinel).toMatchObject({ mode: 'sentinel', username: 'app', password: 'p@ss', db: 3, tls: true });
      expect(JSON.stringify(sentinel)).not.toContain('ignored.example');
      const cluster = load({ REDIS_CLUSTER_NODES: 'n1:7000', REDIS_URL: 'redis://:secret@x' }).queue.redis;
      expect(cluster).toMatchObject({ mode: 'cluster', password: 'secret', tls: false });
    });

    it('REDIS_CLUSTER_NODES selects Cluster and puts the queue prefix in a hash tag', () => {
      const config = load({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7001,redis-3' });
      expect(config.queue.backend).toBe('redis');
      expect(config.queue.redis).toMatchObject({
        mode: 'cluster',
        nodes: [
          { host: '10.0.0.1', port: 7000 },
          { host: '10.0.0.2', port: 7001 },
          { host: 'redis-3', port: 6379 },
        ],
      });
      expect(config.queue.prefix).toBe('{mailroom}');
      expect(load({ REDIS_CLUSTER_NODES: 'n:7000', QUEUE_PREFIX: 'news' }).queue.prefix).toBe('{news}');
      // A prefix that already has a hash tag is kept as it is; an empty tag is no tag.
      expect(load({ REDIS_CLUSTER_NODES: 'n:7000', QUEUE_PREFIX: 'mr:{eu}' }).queue.prefix).toBe('mr:{eu}');
      expect(load({ REDIS_CLUSTER_NODES: 'n:7000', QUEUE_PREFIX: 'mr{}' }).queue.prefix).toBe('{mr{}}');
      // Outside cluster mode the prefix is what it says.
      expect(load({ REDIS_URL: 'redis://localhost', QUEUE_PREFIX: 'news' }).queue.prefix).toBe('news');
    });

    it('REDIS_URL alone is standalone Redis', () => {
      expect(load({ REDIS_URL: 'redis://localhost:6379' }).queue.redis).toEqual({
        mode: 'standalone',
        url: 'redis://localhost:6379',
      });
      expect(load().queue.redis).toBeUndefined();
    });

    it.each([
      ['REDIS_SENTINEL_NAME', { REDIS_SENTINELS: 's1:26379' }, 'is required'],
      ['REDIS_SENTINEL_NAME', { REDIS_SENTINEL_NAME: 'mymaster' }, 'REDIS_SENTINELS is not'],
      ['REDIS_SENTINEL_NAME', { REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'my master' }, 'spaces'],
      ['REDIS_SENTINEL_PASSWORD', { REDIS_SENTINEL_PASSWORD: 'x' }, 'REDIS_SENTINELS is not'],
      ['REDIS_SENTINELS', { REDIS_SENTINELS: 's1:notaport', REDIS_SENTINEL_NAME: 'm' }, 'host:port'],
      ['REDIS_SENTINELS', { REDIS_SENTINELS: 's1:70000', REDIS_SENTINEL_NAME: 'm' }, 'host:port'],
      ['REDIS_SENTINELS', { REDIS_SENTINELS: 'redis://s1:26379', REDIS_SENTINEL_NAME: 'm' }, 'host:port'],
      ['REDIS_SENTINELS', { REDIS_SENTINELS: '[not-ipv6]:26379', REDIS_SENTINEL_NAME: 'm' }, 'host:port'],
      ['REDIS_CLUSTER_NODES', { REDIS_CLUSTER_NODES: 'a:7000,b:0' }, 'host:port'],
      ['REDIS_CLUSTER_NODES', { REDIS_CLUSTER_NODES: 'a b:7000' }, 'host:port'],
      [
        'REDIS_CLUSTER_NODES',
        { REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' },
        'cannot be combined with REDIS_SENTINELS',
      ],
      ['REDIS_URL', { REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://x/2' }, 'database 0'],
      ['REDIS_URL', { REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://x/abc' }, 'database'],
      ['REDIS_URL', { REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'http://x' }, 'redis:'],
    ])('%s (%j) is refused with a message naming it', (variable, extra, words) => {
      const err = configError({ ...MINIMAL, ...extra });
      expect(err.variable).toBe(variable);
      expect(err.message).toContain(`Invalid configuration: ${variable} `);
      expect(err.message).toContain(words);
    });
  });
});
