import { createHash } from 'node:crypto';
import { emailHash, hashToken, newRandomToken, signToken, verifyToken, type VerifyResult } from './tokens.js';

const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';
const OTHER_SECRET = 'other-secret-0123456789abcdef0123456789abcd';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const INVALID: VerifyResult = { ok: false, reason: 'invalid' };

/** Splits a signed token into its three parts. */
function parts(token: string): { id: string; exp: string; sig: string } {
  const [id, exp, sig] = token.split('.');
  return { id, exp, sig };
}

describe('newRandomToken', () => {
  it('returns 256 random bits as unpadded base64url (43 characters)', () => {
    const { raw } = newRandomToken();
    expect(raw).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(raw, 'base64url')).toHaveLength(32);
    expect(Buffer.from(raw, 'base64url').toString('base64url')).toBe(raw);
  });

  it('returns the SHA-256 of the raw token as its hash', () => {
    const { raw, hash } = newRandomToken();
    expect(hash).toEqual(createHash('sha256').update(raw, 'utf8').digest());
    expect(hash).toEqual(hashToken(raw));
  });

  it('is unique over 1000 draws (raw and hash)', () => {
    const raws = new Set<string>();
    const hashes = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newRandomToken();
      raws.add(t.raw);
      hashes.add(t.hash.toString('hex'));
    }
    expect(raws.size).toBe(1000);
    expect(hashes.size).toBe(1000);
  });
});

describe('hashToken', () => {
  it('is SHA-256 (known vector)', () => {
    expect(hashToken('abc').toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('returns a 32-byte buffer', () => {
    expect(hashToken('x')).toBeInstanceOf(Buffer);
    expect(hashToken('x')).toHaveLength(32);
  });

  it('is deterministic and distinguishes inputs', () => {
    expect(hashToken('token-1')).toEqual(hashToken('token-1'));
    expect(hashToken('token-1')).not.toEqual(hashToken('token-2'));
  });
});

describe('signToken / verifyToken', () => {
  const now = new Date('2030-01-01T00:00:00Z');
  const later = new Date('2030-02-01T00:00:00Z');

  it('has the documented shape <id>.<exp seconds>.<22-char mac>', () => {
    const token = signToken(SECRET, 'guide', '12345', later);
    const { id, exp, sig } = parts(token);
    expect(id).toBe('12345');
    expect(exp).toBe(String(Math.floor(later.getTime() / 1000)));
    expect(sig).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(signToken(SECRET, 'unsubscribe', '7')).toMatch(/^7\.0\.[A-Za-z0-9_-]{22}$/);
  });

  it('is deterministic for the same inputs', () => {
    expect(signToken(SECRET, 'guide', '1', later)).toBe(signToken(SECRET, 'guide', '1', later));
  });

  it('round-trips for both purposes', () => {
    expect(verifyToken(SECRET, 'guide', signToken(SECRET, 'guide', '42', later), now)).toEqual({ ok: true, id: '42' });
    expect(verifyToken(SECRET, 'unsubscribe', signToken(SECRET, 'unsubscribe', '9007199254740993'), now)).toEqual({
      ok: true,
      id: '9007199254740993',
    });
  });

  it('serves a single purpose: an unsubscribe token does not verify as guide and vice versa', () => {
    const unsub = signToken(SECRET, 'unsubscribe', '42');
    const guide = signToken(SECRET, 'guide', '42', later);
    expect(verifyToken(SECRET, 'guide', unsub, now)).toEqual(INVALID);
    expect(verifyToken(SECRET, 'unsubscribe', guide, now)).toEqual(INVALID);
  });

  it('fails with the wrong secret', () => {
    const token = signToken(SECRET, 'unsubscribe', '42');
    expect(verifyToken(OTHER_SECRET, 'unsubscribe', token, now)).toEqual(INVALID);
  });

  it('says "expired" after the expiry and is valid up to it', () => {
    const exp = new Date('2030-01-10T00:00:00Z');
    const token = signToken(SECRET, 'guide', '42', exp);
    expect(verifyToken(SECRET, 'guide', token, new Date(exp.getTime() - 1000))).toEqual({ ok: true, id: '42' });
    expect(verifyToken(SECRET, 'guide', token, exp)).toEqual({ ok: true, id: '42' });
    expect(verifyToken(SECRET, 'guide', token, new Date(exp.getTime() + 1000))).toEqual({
      ok: false,
      reason: 'expired',
    });
    expect(verifyToken(SECRET, 'guide', token, new Date('2031-01-01T00:00:00Z'))).toEqual({
      ok: false,
      reason: 'expired',
    });
  });

  it('an expired token with a bad mac is "invalid", not "expired"', () => {
    const token = signToken(SECRET, 'guide', '42', new Date('2000-01-01T00:00:00Z'));
    expect(verifyToken(OTHER_SECRET, 'guide', token, now)).toEqual(INVALID);
  });

  it('tokens without expiry (0) never expire', () => {
    const token = signToken(SECRET, 'unsubscribe', '42');
    expect(parts(token).exp).toBe('0');
    for (const when of [new Date(0), now, new Date('2999-12-31T23:59:59Z'), new Date(8.64e15)]) {
      expect(verifyToken(SECRET, 'unsubscribe', token, when)).toEqual({ ok: true, id: '42' });
    }
  });

  it('uses the current time by default', () => {
    const past = signToken(SECRET, 'guide', '1', new Date(Date.now() - 60_000));
    const future = signToken(SECRET, 'guide', '1', new Date(Date.now() + 60_000));
    expect(verifyToken(SECRET, 'guide', past)).toEqual({ ok: false, reason: 'expired' });
    expect(verifyToken(SECRET, 'guide', future)).toEqual({ ok: true, id: '1' });
  });

  describe('single-character mutations', () => {
    const cases: [string, string][] = [
      ['unsubscribe token (exp 0)', signToken(SECRET, 'unsubscribe', '1234567')],
      ['guide token (with expiry)', signToken(SECRET, 'guide', '98765', later)],
    ];

    it.each(cases)('rejects every single-character mutation of a valid %s', (_label, token) => {
      const purpose = token.split('.')[1] === '0' ? 'unsubscribe' : 'guide';
      expect(verifyToken(SECRET, purpose, token, now).ok).toBe(true);
      const accepted: string[] = [];
      let tried = 0;
      for (let i = 0; i < token.length; i++) {
        for (const c of BASE64URL) {
          if (c === token[i]) continue;
          const mutated = token.slice(0, i) + c + token.slice(i + 1);
          tried++;
          if (verifyToken(SECRET, purpose, mutated, now).ok) accepted.push(mutated);
        }
      }
      const separators = token.split('').filter((c) => c === '.').length;
      expect(tried).toBe(token.length * BASE64URL.length - (token.length - separators));
      expect(accepted).toEqual([]);
    });

    it('rejects every mutation of the last mac character specifically', () => {
      const token = signToken(SECRET, 'unsubscribe', '1234567');
      const last = token[token.length - 1];
      const accepted = [...BASE64URL]
        .filter((c) => c !== last)
        .filter((c) => verifyToken(SECRET, 'unsubscribe', token.slice(0, -1) + c, now).ok);
      expect(accepted).toEqual([]);
    });
  });

  describe('malformed inputs are "invalid"', () => {
    const token = signToken(SECRET, 'unsubscribe', '1234567');
    const { id, exp, sig } = parts(token);

    it.each<[string, string]>([
      ['empty', ''],
      ['truncated by one', token.slice(0, -1)],
      ['truncated to the id', id],
      ['without the mac', `${id}.${exp}.`],
      ['without the expiry', `${id}..${sig}`],
      ['without the id', `.${exp}.${sig}`],
      ['extended by one base64url char', `${token}A`],
      ['extended by a fourth part', `${token}.x`],
      ['extended with base64 padding', `${token}==`],
      ['with a trailing newline', `${token}\n`],
      ['with leading whitespace', ` ${token}`],
      ['garbage', 'not-a-token'],
      ['garbage with dots', 'a.b.c'],
      ['only dots', '..'],
      ['unicode digits in the id', `١٢٣.${exp}.${sig}`],
      ['unicode in the mac', `${id}.${exp}.${sig.slice(0, -1)}é`],
      ['emoji', '🔑.0.AAAAAAAAAAAAAAAAAAAAAA'],
      ['a negative id', `-1.${exp}.${sig}`],
      ['a 20-digit id', `${'1'.repeat(20)}.${exp}.${sig}`],
      ['a 13-digit expiry', `${id}.${'1'.repeat(13)}.${sig}`],
      ['standard base64 characters in the mac', `${id}.${exp}.${sig.slice(0, -2)}+/`],
    ])('%s', (_label, input) => {
      expect(verifyToken(SECRET, 'unsubscribe', input, now)).toEqual(INVALID);
    });

    it('rejects a non-canonical expiry (leading zero) of an otherwise valid token', () => {
      // Same id, same numeric expiry, same mac: only the string differs. It must not verify.
      expect(verifyToken(SECRET, 'unsubscribe', `${id}.0${exp}.${sig}`, now)).toEqual(INVALID);
    });
  });

  describe('id tampering', () => {
    it('fails when the id is changed and the mac kept', () => {
      const token = signToken(SECRET, 'unsubscribe', '1000');
      const { exp, sig } = parts(token);
      for (const other of ['1001', '999', '10000', '100', '01000', '0']) {
        expect(verifyToken(SECRET, 'unsubscribe', `${other}.${exp}.${sig}`, now)).toEqual(INVALID);
      }
    });

    it('fails when the expiry is changed and the mac kept (cannot extend a guide link)', () => {
      const token = signToken(SECRET, 'guide', '1000', later);
      const { id, sig } = parts(token);
      const extended = Math.floor(new Date('2099-01-01T00:00:00Z').getTime() / 1000);
      expect(verifyToken(SECRET, 'guide', `${id}.${extended}.${sig}`, now)).toEqual(INVALID);
      expect(verifyToken(SECRET, 'guide', `${id}.0.${sig}`, now)).toEqual(INVALID);
    });

    it('a mac from another id cannot be transplanted', () => {
      const a = parts(signToken(SECRET, 'unsubscribe', '1'));
      const b = parts(signToken(SECRET, 'unsubscribe', '2'));
      expect(verifyToken(SECRET, 'unsubscribe', `${a.id}.${a.exp}.${b.sig}`, now)).toEqual(INVALID);
    });
  });
});

describe('emailHash', () => {
  it('is stable for the same secret and address', () => {
    expect(emailHash(SECRET, 'a@b.com')).toEqual(emailHash(SECRET, 'a@b.com'));
    expect(emailHash(SECRET, 'a@b.com')).toHaveLength(32);
  });

  it('is keyed: different secrets give different hashes', () => {
    expect(emailHash(SECRET, 'a@b.com')).not.toEqual(emailHash(OTHER_SECRET, 'a@b.com'));
  });

  it('differs per address and is not a plain SHA-256 of the address', () => {
    expect(emailHash(SECRET, 'a@b.com')).not.toEqual(emailHash(SECRET, 'c@b.com'));
    expect(emailHash(SECRET, 'a@b.com')).not.toEqual(createHash('sha256').update('a@b.com').digest());
  });
});
