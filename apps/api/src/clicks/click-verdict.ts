/**
 * Human or machine: the rules a single request can decide (see docs/clicks.md). The rules that
 * need the click's neighbours, `early` (within EARLY_SECONDS of the mail's delivery) and `burst`
 * (every link of the mail within BURST_SECONDS), are applied where the click is recorded
 * (clicks.repository.ts).
 */
export type MachineReason = 'scanner' | 'prefetch' | 'early' | 'burst';

/** A click this soon after the server accepted the mail is a gateway checking links, not a reader. */
export const EARLY_SECONDS = 10;
/** Every link of one mail clicked within this long is a scanner walking the mail. */
export const BURST_SECONDS = 10;

/**
 * User agents of link scanners, security gateways, previewers and HTTP libraries. A reader's
 * browser names none of these words; an empty user agent is a machine too.
 */
const MACHINE_AGENTS = new RegExp(
  [
    // Words bots and previewers put in their names.
    'bot\\b',
    'bot/',
    'crawl',
    'spider',
    'scan',
    'preview',
    'prefetch',
    'headless',
    'phantomjs',
    'slurp',
    'proxy',
    'checker',
    // Mail security gateways and link rewriters.
    'barracuda',
    'mimecast',
    'proofpoint',
    'urldefense',
    'messagelabs',
    'symantec',
    'fireeye',
    'trend ?micro',
    'tmufe',
    'sophos',
    'forcepoint',
    'zscaler',
    'ironport',
    'bitdefender',
    'kaspersky',
    'safelinks',
    'google-safety',
    'microsoft office',
    'ms-office',
    // Link unfurlers of chat apps.
    'facebookexternalhit',
    'whatsapp',
    'skypeuripreview',
    'iframely',
    'embedly',
    // HTTP libraries and command-line tools.
    '^curl/',
    '^wget',
    'python-',
    '^python',
    'go-http-client',
    '^java/',
    'okhttp',
    'apache-httpclient',
    'libwww-perl',
    '^axios',
    'node-fetch',
    '^undici',
    'scrapy',
  ].join('|'),
  'i',
);

/** Request headers browsers and mail apps send when they fetch a page ahead of any click. */
function isPrefetch(h: Record<string, string | string[] | undefined>): boolean {
  const first = (name: string) => {
    const v = h[name];
    return (Array.isArray(v) ? v[0] : v)?.toLowerCase() ?? '';
  };
  return (
    /\b(prefetch|prerender|preview)\b/.test(first('sec-purpose')) ||
    /\b(prefetch|prerender|preview)\b/.test(first('purpose')) ||
    /\b(prefetch|preview)\b/.test(first('x-purpose')) ||
    first('x-moz') === 'prefetch'
  );
}

/** `scanner` or `prefetch` when the request alone shows a machine; null when it may be a reader. */
export function requestVerdict(headers: Record<string, string | string[] | undefined>): 'scanner' | 'prefetch' | null {
  if (isPrefetch(headers)) return 'prefetch';
  const ua = headers['user-agent'];
  const agent = (Array.isArray(ua) ? ua[0] : ua)?.trim() ?? '';
  if (agent === '' || MACHINE_AGENTS.test(agent)) return 'scanner';
  return null;
}
