import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';

/** Typed, validated configuration. Parsed once at start; a bad variable stops the process. */
export interface AppConfig {
  env: 'development' | 'production' | 'test';
  db: { url: string };
  queue: {
    backend: 'redis' | 'postgres';
    /** REDIS_URL in standalone mode; with Sentinel or Cluster only its credentials, database and TLS count. */
    redisUrl?: string;
    /** Where the Redis backend lives: one server, a Sentinel-watched master, or a Cluster. */
    redis?: RedisTarget;
    /** Key prefix of every queue; in cluster mode it always carries a hash tag (`{mailroom}`). */
    prefix: string;
    attempts: number;
    backoffMs: number;
  };
  smtp: {
    url: string;
    pool: boolean;
    maxConnections: number;
    /** Threads that send bulk mail (digests), the connections shared out between them; 0: the main thread. */
    threads: number;
    /** SMTP_ROUTES: named SMTP servers a newsletter may send through (`smtpRoute`); empty when unset. */
    routes: ReadonlyMap<string, SmtpRouteConfig>;
  };
  publicUrl: string;
  /** PRIVACY_URL: the publisher's privacy policy, linked by every signup form, reader page and mail footer. */
  privacyUrl?: string;
  port: number;
  mailFrom?: string;
  appSecret: string;
  adminApiKey?: string;
  /** Bearer token Prometheus sends to GET /metrics (admin API keys work too). */
  metrics: { token?: string };
  postalAddress: string;
  sendRatePerSecond: number;
  /**
   * The proxies in front of the api: false (none: the socket address is the client), a hop count,
   * or the proxies' addresses/CIDRs. Handed to Fastify's trustProxy.
   */
  trustProxy: false | number | string[];
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  abuse: {
    /** Confirmation mails per address in any rolling 24 h. */
    confirmationsPerDay: number;
    /** Public POSTs per client IP per minute. */
    publicPostsPerMinute: number;
  };
  tokens: { confirmTtlHours: number; guideTtlDays: number };
  outbox: { pollMs: number };
  digest: {
    /** Most articles in one digest (newest first). */
    maxArticles: number;
    /** A digest due longer ago than this (e.g. after downtime) is skipped, not sent late. */
    graceMinutes: number;
    /** Recipients per batch job. */
    batchSize: number;
    /** Batch jobs one worker runs at once. */
    concurrency: number;
    /** After this many 5.7.x (policy) rejections the digest stops and says why. */
    policyFailureLimit: number;
  };
  feeds: {
    pollMinutes: number;
    timeoutMs: number;
    /** FEED_ALLOW_PRIVATE: feeds (and outgoing webhooks) may reach loopback, private and link-local addresses. */
    allowPrivate: boolean;
    /** Ports a feed URL may name (FEED_ALLOWED_PORTS); 80 and 443 unless configured; 'any' for `*`. */
    allowedPorts: number[] | 'any';
    /** Most entries read from one poll of one feed (FEED_MAX_ITEMS). */
    maxItems: number;
  };
  /** The staff console under /admin. */
  console: {
    /** The session cookie carries Secure: true exactly when PUBLIC_URL is https. */
    secureCookie: boolean;
    /** A session unused for this long ends (sliding expiry). */
    sessionIdleMinutes: number;
    /** A session ends this long after sign-in, however active. */
    sessionMaxMinutes: number;
    /** Failed sign-ins allowed per e-mail address, and per client IP, within the window. */
    loginFailuresPerEmail: number;
    loginFailuresPerIp: number;
    loginWindowMinutes: number;
  };
  reliability: {
    /** A job whose worker stops renewing its lock for this long is re-run by another worker. */
    jobLockMs: number;
    /** A delivery claimed this long ago without an outcome was in flight at a crash: sent again. */
    deliveryStaleSeconds: number;
    /** How often the worker looks for lost work (outbox rows, stuck digests). */
    reconcileIntervalMs: number;
    /** Work older than this with no progress counts as lost. */
    reconcileAfterMs: number;
  };
  /**
   * VERP bounces (BOUNCE_DOMAIN, BOUNCE_SMTP_PORT, BOUNCE_SMTP_HOST): when set, every mail's
   * envelope sender is `bounces+<token>@domain` and the worker takes delivery reports by SMTP.
   */
  bounces?: { domain: string; port: number; host: string; maxBytes: number };
  webhooks: {
    mailgunSigningKey?: string;
    postmarkUser?: string;
    postmarkPassword?: string;
    /** Shared secret in the SNS subscription URL: /v1/webhooks/ses?token=… */
    sesToken?: string;
    /**
     * Origins (scheme://host[:port]) trusted as Amazon SNS: SigningCertURL and SubscribeURL are
     * fetched only when their origin matches. Default: https on an sns.<region>.amazonaws.com(.cn) host.
     */
    sesSnsOriginPattern: RegExp;
    /** When set, SNS messages from any other topic are refused. */
    sesTopicArns?: string[];
  };
  /** Outgoing webhooks (docs/webhooks-out.md). */
  webhooksOut: {
    /** How often the worker looks for due deliveries. */
    pollMs: number;
    /** Deadline of one POST, connection to response. */
    timeoutMs: number;
    /** First retry delay; each later one doubles (with jitter), capped at an hour. */
    retryBaseMs: number;
    /** Retries stop this long after the event (or its replay): the delivery is marked failed. */
    retryWindowSeconds: number;
    /** Delivered and failed deliveries (and their attempts) are kept this many days. */
    keepDays: number;
  };
}

/** One of SMTP_ROUTES: its server, its connections and (optionally) its own rate under the global one. */
export interface SmtpRouteConfig {
  name: string;
  url: string;
  /** Mails per second through this route (at most SEND_RATE_PER_SECOND); unset: the global rate alone. */
  rate?: number;
  maxConnections: number;
}

export interface HostPort {
  host: string;
  port: number;
}

/** Credentials and TLS for the Redis data nodes (from REDIS_URL's user, password and rediss: scheme). */
export interface RedisAuth {
  username?: string;
  password?: string;
  tls: boolean;
}

export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | (RedisAuth & {
      mode: 'sentinel';
      sentinels: HostPort[];
      /** The master group's name in the sentinels' configuration. */
      name: string;
      sentinelPassword?: string;
      db: number;
    })
  | (RedisAuth & { mode: 'cluster'; nodes: HostPort[] });

export class ConfigError extends Error {
  constructor(
    public readonly variable: string,
    reason: string,
  ) {
    super(`Invalid configuration: ${variable} ${reason}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

/**
 * TRUST_PROXY: a hop count (`1`, `2`…) or the proxies' addresses/CIDRs (`10.0.0.0/8,192.168.1.5`).
 * `true` once meant "trust every hop", which let any client choose its IP: it now means one hop.
 */
function trustProxy(env: Env): false | number | string[] {
  const raw = str(env, 'TRUST_PROXY');
  if (raw === undefined || raw === 'false' || raw === '0') return false;
  if (raw === 'true') return 1;
  if (/^\d+$/.test(raw)) {
    const n = Number(raw);
    if (n > 20) throw new ConfigError('TRUST_PROXY', `must be a hop count from 0 to 20, got ${n}`);
    return n;
  }
  const items = raw
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  for (const item of items) {
    const [addr, bits, extra] = item.split('/');
    const family = isIP(addr ?? '');
    const maxBits = family === 6 ? 128 : 32;
    if (
      family === 0 ||
      extra !== undefined ||
      (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > maxBits))
    ) {
      throw new ConfigError(
        'TRUST_PROXY',
        `must be a hop count or a list of proxy addresses/CIDRs (e.g. 10.0.0.0/8,192.168.1.5), got "${item}"`,
      );
    }
  }
  return items;
}

function ports(env: Env, name: string, def: number[]): number[] | 'any' {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (raw === '*') return 'any';
  const items = raw.split(',').map((x) => x.trim());
  for (const item of items) {
    if (!/^\d+$/.test(item) || Number(item) < 1 || Number(item) > 65535) {
      throw new ConfigError(name, `must be a comma-separated list of ports (1-65535), got "${item}"`);
    }
  }
  return items.map(Number);
}

/** Why a production PUBLIC_URL will not do: not https, or not on a host name (an IP literal, localhost). */
function publicUrlProblem(raw: string): string | null {
  const u = new URL(raw);
  if (u.protocol !== 'https:') return `must be https in production, got ${u.protocol}//`;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost') || !host.includes('.')) {
    return `must name a real host in production, got "${u.hostname}"`;
  }
  return null;
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use one of ${protocols.join(', ')} (got ${parsed.protocol})`);
  }
  return raw;
}

function pattern(env: Env, name: string, def: string): RegExp {
  const raw = str(env, name) ?? def;
  try {
    return new RegExp(raw);
  } catch {
    throw new ConfigError(name, `is not a valid regular expression: "${raw}"`);
  }
}

function list(env: Env, name: string): string[] | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  const items = raw
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  return items.length > 0 ? items : undefined;
}

/** `host:port,host:port…` (IPv6 in brackets: `[::1]:26379`); a missing port is `defaultPort`. */
function hostPorts(env: Env, name: string, defaultPort: number): HostPort[] | undefined {
  const items = list(env, name);
  if (items === undefined) return undefined;
  return items.map((item) => {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/.exec(item);
    const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
    const host = m?.[1] ?? m?.[2];
    if (!host || (m?.[1] !== undefined && isIP(host) !== 6) || port < 1 || port > 65535) {
      throw new ConfigError(
        name,
        `must be a comma-separated list of host:port (e.g. 10.0.0.5:${defaultPort}), got "${item}"`,
      );
    }
    return { host, port };
  });
}

/** Whether Redis Cluster would hash every key under this prefix by one tag: a non-empty `{…}`. */
export function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  if (open < 0) return false;
  const close = prefix.indexOf('}', open + 1);
  return close > open + 1;
}

/**
 * The Redis backend: REDIS_SENTINELS (+ REDIS_SENTINEL_NAME) or REDIS_CLUSTER_NODES when set, else
 * REDIS_URL. With either of the first two, REDIS_URL (optional) gives only the data nodes'
 * user, password, database and TLS (rediss:); its host is not used.
 */
function redisTarget(env: Env, redisUrl: string | undefined): RedisTarget | undefined {
  const sentinels = hostPorts(env, 'REDIS_SENTINELS', 26379);
  const sentinelName = str(env, 'REDIS_SENTINEL_NAME');
  const sentinelPassword = str(env, 'REDIS_SENTINEL_PASSWORD');
  const nodes = hostPorts(env, 'REDIS_CLUSTER_NODES', 6379);
  if (sentinels && nodes) {
    throw new ConfigError('REDIS_CLUSTER_NODES', 'cannot be combined with REDIS_SENTINELS: set one of them');
  }
  if (!sentinels) {
    if (sentinelName) throw new ConfigError('REDIS_SENTINEL_NAME', 'is set but REDIS_SENTINELS is not');
    if (sentinelPassword) throw new ConfigError('REDIS_SENTINEL_PASSWORD', 'is set but REDIS_SENTINELS is not');
  }
  if (!sentinels && !nodes) return redisUrl ? { mode: 'standalone', url: redisUrl } : undefined;
  const u = redisUrl ? new URL(redisUrl) : undefined;
  const db = u && u.pathname.length > 1 ? u.pathname.slice(1) : '0';
  if (!/^\d{1,2}$/.test(db)) throw new ConfigError('REDIS_URL', `names no database number: "${u?.pathname}"`);
  const auth: RedisAuth = {
    username: u?.username ? decodeURIComponent(u.username) : undefined,
    password: u?.password ? decodeURIComponent(u.password) : undefined,
    tls: u?.protocol === 'rediss:',
  };
  if (sentinels) {
    if (!sentinelName) {
      throw new ConfigError(
        'REDIS_SENTINEL_NAME',
        'is required with REDIS_SENTINELS: the master group name (e.g. mymaster)',
      );
    }
    if (/[\s\0]/.test(sentinelName))
      throw new ConfigError('REDIS_SENTINEL_NAME', 'must not contain spaces or control characters');
    return { mode: 'sentinel', sentinels, name: sentinelName, sentinelPassword, db: Number(db), ...auth };
  }
  if (db !== '0') {
    throw new ConfigError(
      'REDIS_URL',
      `must name database 0 (or none) with REDIS_CLUSTER_NODES: a Redis Cluster has no database ${db}`,
    );
  }
  return { mode: 'cluster', nodes: nodes ?? [], ...auth };
}

/** No CR/LF may ever reach a header: reject it at the door. */
function headerSafe(env: Env, name: string): string | undefined {
  const v = str(env, name);
  if (v !== undefined && /[\r\n]/.test(v)) throw new ConfigError(name, 'must not contain line breaks');
  return v;
}

/** A route's name: what a newsletter's `smtpRoute` holds, and what logs and pause reasons show. */
export const SMTP_ROUTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const ROUTE_KEYS = ['url', 'rate', 'maxConnections'];

/**
 * SMTP_ROUTES: `{ "<name>": "smtp://…" }` or `{ "<name>": { "url": "smtp://…", "rate": 20,
 * "maxConnections": 5 } }`. Messages never echo a URL (it may hold a password).
 */
function smtpRoutes(env: Env, globalRate: number, defaultConnections: number): Map<string, SmtpRouteConfig> {
  const name = 'SMTP_ROUTES';
  const raw = str(env, name);
  const routes = new Map<string, SmtpRouteConfig>();
  if (raw === undefined) return routes;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(name, `is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(name, 'must be a JSON object of route names to smtp:// URLs, e.g. {"spine":"smtp://…"}');
  }
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (!SMTP_ROUTE_NAME.test(key)) {
      throw new ConfigError(
        name,
        `route name "${key.slice(0, 64)}" must be 1-63 letters, digits, dots, dashes or underscores, starting with a letter or digit`,
      );
    }
    const entry = typeof value === 'string' ? { url: value } : value;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new ConfigError(
        name,
        `route "${key}" must be an smtp:// URL or an object { "url", "rate", "maxConnections" }`,
      );
    }
    const fields = entry as Record<string, unknown>;
    const extra = Object.keys(fields).find((k) => !ROUTE_KEYS.includes(k));
    if (extra !== undefined) throw new ConfigError(name, `route "${key}" has an unknown field "${extra.slice(0, 64)}"`);
    let url: URL | null = null;
    try {
      url = typeof fields.url === 'string' ? new URL(fields.url) : null;
    } catch {
      url = null;
    }
    if (!url || !['smtp:', 'smtps:'].includes(url.protocol) || url.hostname === '') {
      throw new ConfigError(name, `route "${key}" must have an smtp:// or smtps:// URL with a host`);
    }
    const whole = (field: string, min: number, max: number): number | undefined => {
      const v = fields[field];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        throw new ConfigError(name, `route "${key}": ${field} must be a whole number from ${min} to ${max}`);
      }
      return v;
    };
    const rate = whole('rate', 1, 100_000);
    if (rate !== undefined && rate > globalRate) {
      throw new ConfigError(
        name,
        `route "${key}": rate ${rate} is above SEND_RATE_PER_SECOND (${globalRate}); a route's rate is a share of the global one`,
      );
    }
    routes.set(key, {
      name: key,
      url: fields.url as string,
      rate,
      maxConnections: whole('maxConnections', 1, 100) ?? defaultConnections,
    });
  }
  return routes;
}

const HOST_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

/**
 * BOUNCE_DOMAIN (a host name whose MX points at the worker) and BOUNCE_SMTP_PORT: both or neither,
 * the port 2525 when only the domain is given; BOUNCE_SMTP_HOST is the listener's bind address.
 */
function bounces(env: Env): AppConfig['bounces'] {
  const rawDomain = str(env, 'BOUNCE_DOMAIN');
  const rawPort = str(env, 'BOUNCE_SMTP_PORT');
  const rawHost = str(env, 'BOUNCE_SMTP_HOST');
  if (rawDomain === undefined) {
    if (rawPort !== undefined) throw new ConfigError('BOUNCE_SMTP_PORT', 'needs BOUNCE_DOMAIN as well');
    if (rawHost !== undefined) throw new ConfigError('BOUNCE_SMTP_HOST', 'needs BOUNCE_DOMAIN as well');
    return undefined;
  }
  const domain = rawDomain.toLowerCase().replace(/\.$/, '');
  if (!HOST_NAME.test(domain)) {
    throw new ConfigError('BOUNCE_DOMAIN', `must be a host name such as bounces.example.com, got "${rawDomain}"`);
  }
  const host = rawHost ?? '0.0.0.0';
  if (isIP(host) === 0) throw new ConfigError('BOUNCE_SMTP_HOST', `must be an IP address to listen on, got "${host}"`);
  return {
    domain,
    port: int(env, 'BOUNCE_SMTP_PORT', 2525, 1, 65535),
    host,
    maxBytes: int(env, 'BOUNCE_MAX_BYTES', 1_048_576, 10_240, 52_428_800),
  };
}

/** Amazon SNS: https, on an sns.<region>.amazonaws.com(.cn) host. Matched against a URL's origin. */
export const DEFAULT_SNS_ORIGIN_PATTERN = '^https://sns\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?$';

export const DEFAULT_POSTAL_ADDRESS = 'Veritas Health LLC, 580 N Bank Ln, Lake Forest, IL, 60045, USA';

/**
 * Builds the configuration from environment variables.
 * `NODE_ENV` decides what may default: outside development and test, secrets must be given.
 */
export function loadConfig(env: Env = process.env, opts: { linksUnused?: boolean } = {}): AppConfig {
  // Production unless told otherwise: `npm run dev` and the tests say so themselves.
  const nodeEnv = str(env, 'NODE_ENV') ?? 'production';
  if (!['development', 'production', 'test'].includes(nodeEnv)) {
    throw new ConfigError('NODE_ENV', `must be development, production or test, got "${nodeEnv}"`);
  }
  const mode = nodeEnv as AppConfig['env'];
  const prod = mode === 'production';

  const dbUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  if (!dbUrl) throw new ConfigError('DATABASE_URL', 'is required (npm run dev starts an embedded PostgreSQL for you)');
  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:']);
  const redis = redisTarget(env, redisUrl);
  // Redis Cluster keeps a queue's keys together only under a hash tag: cluster mode adds one.
  let queuePrefix = str(env, 'QUEUE_PREFIX') ?? 'mailroom';
  if (redis?.mode === 'cluster' && !hasHashTag(queuePrefix)) queuePrefix = `{${queuePrefix}}`;
  const smtpUrl = url(env, 'SMTP_URL', ['smtp:', 'smtps:']);
  if (!smtpUrl) throw new ConfigError('SMTP_URL', 'is required (npm run dev starts a local mail catcher for you)');

  const publicUrl = url(env, 'PUBLIC_URL', ['http:', 'https:']) ?? (prod ? undefined : 'http://localhost:3000');
  const base = (publicUrl ?? 'http://localhost:3000').replace(/\/+$/, '');
  const privacyUrl = url(env, 'PRIVACY_URL', ['http:', 'https:']);
  let appSecret = str(env, 'APP_SECRET');
  if (!appSecret) {
    if (prod) throw new ConfigError('APP_SECRET', 'is required outside development (at least 32 characters)');
    appSecret = randomBytes(32).toString('hex');
  }
  if (appSecret.length < 32) throw new ConfigError('APP_SECRET', 'must be at least 32 characters');
  // Every link in every mail starts here: in production it must be https on a real host name
  // (RFC 8058 one-click wants https; List-Id is built from the host). The CLI makes no links.
  if (prod && !opts.linksUnused && !bool(env, 'PUBLIC_URL_ALLOW_HTTP', false)) {
    if (!publicUrl) throw new ConfigError('PUBLIC_URL', 'is required in production: the https address of the api');
    const problem = publicUrlProblem(publicUrl);
    if (problem) {
      throw new ConfigError('PUBLIC_URL', `${problem} (PUBLIC_URL_ALLOW_HTTP=true allows it on a test rig)`);
    }
  }
  const adminApiKey = str(env, 'ADMIN_API_KEY');
  if (adminApiKey !== undefined && adminApiKey.length < 24) {
    throw new ConfigError('ADMIN_API_KEY', 'must be at least 24 characters');
  }
  const metricsToken = str(env, 'METRICS_TOKEN');
  if (
    metricsToken !== undefined &&
    (metricsToken.length < 24 || metricsToken.length > 200 || /\s/.test(metricsToken))
  ) {
    throw new ConfigError('METRICS_TOKEN', 'must be 24 to 200 characters without spaces');
  }

  const mailFrom = headerSafe(env, 'MAIL_FROM');
  const sendRatePerSecond = int(env, 'SEND_RATE_PER_SECOND', 50, 1, 100_000);
  const maxConnections = int(env, 'SMTP_POOL_SIZE', 5, 1, 100);
  const logLevel = str(env, 'LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }

  return {
    env: mode,
    db: { url: dbUrl },
    queue: {
      backend: redis ? 'redis' : 'postgres',
      redisUrl,
      redis,
      prefix: queuePrefix,
      attempts: int(env, 'JOB_ATTEMPTS', 8, 1, 100),
      backoffMs: int(env, 'JOB_BACKOFF_MS', 5000, 1, 3_600_000),
    },
    smtp: {
      url: smtpUrl,
      pool: true,
      maxConnections,
      threads: int(env, 'SMTP_THREADS', 2, 0, 16),
      routes: smtpRoutes(env, sendRatePerSecond, maxConnections),
    },
    publicUrl: base,
    privacyUrl,
    port: int(env, 'PORT', 3000, 0, 65535),
    mailFrom,
    appSecret,
    adminApiKey,
    metrics: { token: metricsToken },
    postalAddress: headerSafe(env, 'POSTAL_ADDRESS') ?? DEFAULT_POSTAL_ADDRESS,
    sendRatePerSecond,
    trustProxy: trustProxy(env),
    logLevel: logLevel as AppConfig['logLevel'],
    abuse: {
      confirmationsPerDay: int(env, 'CONFIRMATIONS_PER_ADDRESS_PER_DAY', 3, 1, 100),
      publicPostsPerMinute: int(env, 'PUBLIC_POSTS_PER_IP_PER_MINUTE', 30, 1, 1_000_000),
    },
    tokens: {
      confirmTtlHours: int(env, 'CONFIRM_TOKEN_TTL_HOURS', 168, 1, 24 * 90),
      guideTtlDays: int(env, 'GUIDE_LINK_TTL_DAYS', 30, 1, 3650),
    },
    outbox: { pollMs: int(env, 'OUTBOX_POLL_MS', 500, 10, 60_000) },
    webhooksOut: {
      pollMs: int(env, 'WEBHOOK_POLL_MS', 1000, 10, 60_000),
      timeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
      retryBaseMs: int(env, 'WEBHOOK_RETRY_BASE_MS', 10_000, 10, 3_600_000),
      retryWindowSeconds: int(env, 'WEBHOOK_RETRY_WINDOW_SECONDS', 86_400, 1, 30 * 86_400),
      keepDays: int(env, 'WEBHOOK_KEEP_DAYS', 30, 1, 3650),
    },
    digest: {
      maxArticles: int(env, 'DIGEST_MAX_ARTICLES', 10, 1, 100),
      graceMinutes: int(env, 'DIGEST_GRACE_MINUTES', 60, 1, 7 * 24 * 60),
      batchSize: int(env, 'DIGEST_BATCH_SIZE', 500, 1, 10_000),
      concurrency: int(env, 'DIGEST_CONCURRENCY', 4, 1, 64),
      policyFailureLimit: int(env, 'DIGEST_POLICY_FAILURE_LIMIT', 10, 1, 1_000_000),
    },
    reliability: {
      jobLockMs: int(env, 'JOB_LOCK_MS', 30_000, 1000, 600_000),
      deliveryStaleSeconds: int(env, 'DELIVERY_STALE_SECONDS', 120, 1, 86_400),
      reconcileIntervalMs: int(env, 'RECONCILE_INTERVAL_MS', 60_000, 100, 3_600_000),
      reconcileAfterMs: int(env, 'RECONCILE_AFTER_MS', 300_000, 100, 86_400_000),
    },
    bounces: bounces(env),
    webhooks: {
      mailgunSigningKey: str(env, 'MAILGUN_WEBHOOK_SIGNING_KEY'),
      postmarkUser: str(env, 'POSTMARK_WEBHOOK_USER'),
      postmarkPassword: str(env, 'POSTMARK_WEBHOOK_PASSWORD'),
      sesToken: str(env, 'SES_WEBHOOK_TOKEN'),
      sesSnsOriginPattern: pattern(env, 'SES_SNS_ORIGIN_PATTERN', DEFAULT_SNS_ORIGIN_PATTERN),
      sesTopicArns: list(env, 'SES_SNS_TOPIC_ARNS'),
    },
    console: {
      secureCookie: base.startsWith('https:'),
      sessionIdleMinutes: int(env, 'CONSOLE_SESSION_IDLE_MINUTES', 12 * 60, 1, 30 * 24 * 60),
      sessionMaxMinutes: int(env, 'CONSOLE_SESSION_MAX_MINUTES', 7 * 24 * 60, 1, 90 * 24 * 60),
      loginFailuresPerEmail: int(env, 'CONSOLE_LOGIN_FAILURES_PER_EMAIL', 5, 1, 1000),
      loginFailuresPerIp: int(env, 'CONSOLE_LOGIN_FAILURES_PER_IP', 20, 1, 100_000),
      loginWindowMinutes: int(env, 'CONSOLE_LOGIN_WINDOW_MINUTES', 15, 1, 24 * 60),
    },
    feeds: {
      pollMinutes: int(env, 'FEED_POLL_MINUTES', 15, 1, 24 * 60),
      timeoutMs: int(env, 'FEED_TIMEOUT_MS', 10_000, 100, 120_000),
      allowPrivate: bool(env, 'FEED_ALLOW_PRIVATE', false),
      allowedPorts: ports(env, 'FEED_ALLOWED_PORTS', [80, 443]),
      maxItems: int(env, 'FEED_MAX_ITEMS', 500, 1, 100_000),
    },
  };
}

export const APP_CONFIG = Symbol('APP_CONFIG');
