import { dkimVerify } from 'mailauth/lib/dkim/verify.js';

/** A DNS TXT record as `dkim generate` prints it: its name and its character-strings. */
export interface PrintedRecord {
  name: string;
  strings: string[];
}

/** What the independent verifier (mailauth) says of a message's DKIM signatures. */
export interface DkimVerdict {
  /** One entry per DKIM-Signature: pass, fail, neutral, … */
  results: { result: string; domain?: string; selector?: string; headers: string[]; comment?: string }[];
}

/**
 * Verifies a received message with mailauth, answering its DNS TXT lookups from the printed
 * records only (no network): a name no record was printed for does not exist.
 */
export async function verifyDkim(raw: Buffer | string, records: PrintedRecord[]): Promise<DkimVerdict> {
  const resolver = (name: string, rrtype: string): Promise<string[][]> => {
    const found = records.find((r) => r.name.toLowerCase() === name.toLowerCase().replace(/\.$/, ''));
    if (rrtype !== 'TXT' || !found) {
      const err = new Error(`queryTxt ENOTFOUND ${name}`) as Error & { code: string };
      err.code = 'ENOTFOUND';
      return Promise.reject(err);
    }
    return Promise.resolve([found.strings]);
  };
  const verdict = await dkimVerify(raw, { resolver });
  return {
    results: verdict.results.map((r) => ({
      result: r.status.result,
      domain: r.signingDomain,
      selector: r.selector,
      headers: (r.signingHeaders?.keys ?? '')
        .toLowerCase()
        .split(':')
        .map((h) => h.trim())
        .filter(Boolean),
      comment: r.status.comment,
    })),
  };
}

/** Parses a record printed by `dkim generate` (its `name IN TXT ( "…" "…" )` zone line). */
export function recordFromZoneLine(line: string): PrintedRecord {
  const m = /^(\S+?)\.? IN TXT \( (.*) \)$/.exec(line.trim());
  if (!m) throw new Error(`not a printed TXT record: ${line}`);
  return { name: m[1], strings: [...m[2].matchAll(/"([^"]*)"/g)].map((s) => s[1]) };
}
