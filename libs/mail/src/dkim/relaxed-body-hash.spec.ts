import { randomInt } from 'node:crypto';
import RelaxedBody from 'nodemailer/lib/dkim/relaxed-body.js';
import { CanonicalPart, RelaxedBodyHash } from './relaxed-body-hash.js';

/** nodemailer's own relaxed body hash of the whole body: the reference. */
function reference(body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const stream = new RelaxedBody({ hashAlgo: 'sha256' });
    stream.on('hash', (hash: string) => resolve(hash));
    stream.on('error', reject);
    stream.resume();
    stream.end(body);
  });
}

/** Bodies made of the characters canonicalisation cares about, so edges meet in every way. */
function randomBody(): Buffer {
  const alphabet = ['a', 'b', ' ', '\t', '\r', '\n', '\r\n', '\r\n', '  ', '='];
  let s = '';
  for (let i = randomInt(0, 60); i > 0; i -= 1) s += alphabet[randomInt(0, alphabet.length)];
  return Buffer.from(s, 'latin1');
}

/** The body cut into 1 to 6 pieces at random places. */
function cut(body: Buffer): Buffer[] {
  const at = Array.from({ length: randomInt(0, 6) }, () => randomInt(0, body.length + 1)).sort((a, b) => a - b);
  return [0, ...at, body.length].slice(1).map((end, i, ends) => body.subarray(i === 0 ? 0 : ends[i - 1], end));
}

describe('relaxed body hash', () => {
  it('is nodemailer’s hash, whether fed raw, as canonical parts or from a copy', async () => {
    for (let n = 0; n < 400; n += 1) {
      const body = randomBody();
      const expected = await reference(body);
      const pieces = cut(body);

      const raw = new RelaxedBodyHash();
      pieces.forEach((p) => raw.update(p));
      // Alternately raw and pre-canonicalised pieces: the edges of each meet the other kind.
      const mixed = new RelaxedBodyHash();
      pieces.forEach((p, i) => (i % 2 ? mixed.update(p) : mixed.updatePart(CanonicalPart.of(p))));
      const parts = new RelaxedBodyHash();
      pieces.forEach((p) => parts.updatePart(CanonicalPart.of(p)));
      // A copy taken after the first piece goes on independently of the original.
      const original = new RelaxedBodyHash();
      original.update(pieces[0]);
      const copy = original.copy();
      original.update('changed after the copy');
      pieces.slice(1).forEach((p) => copy.updatePart(CanonicalPart.of(p)));

      const got = [raw.digest(), mixed.digest(), parts.digest(), copy.digest()];
      if (got.some((g) => g !== expected))
        throw new Error(
          `body ${JSON.stringify(body.toString('latin1'))} in ${pieces.length} pieces: ${got.join(' ')} ≠ ${expected}`,
        );
    }
  });

  it('follows RFC 6376 3.4.4 on its example: whitespace runs, line-end whitespace and trailing empty lines', () => {
    const h = new RelaxedBodyHash();
    h.update(' C \r\nD \t E\r\n\r\n\r\n');
    const same = new RelaxedBodyHash();
    same.update(' C\r\nD E\r\n');
    expect(h.digest()).toBe(same.digest());
  });
});
