import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const DIR = join(__dirname, '..', 'fixtures', 'bounces');

/** The sample files (test/fixtures/bounces/*.eml), by name without the extension. */
export const BOUNCE_SAMPLES = readdirSync(DIR)
  .filter((f) => f.endsWith('.eml'))
  .map((f) => f.slice(0, -'.eml'.length))
  .sort();

/**
 * One sample as it arrives by SMTP (CRLF line ends), addressed to `verp` about `rcpt`. The
 * bounce domain is the VERP address's own.
 */
export function bounceSample(name: string, vars: { verp: string; rcpt: string }): string {
  const domain = vars.verp.slice(vars.verp.lastIndexOf('@') + 1);
  return readFileSync(join(DIR, `${name}.eml`), 'utf8')
    .replaceAll('{{VERP}}', vars.verp)
    .replaceAll('{{RCPT}}', vars.rcpt)
    .replaceAll('{{BOUNCE_DOMAIN}}', domain)
    .replace(/\r?\n/g, '\r\n');
}
