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
});
