import {
  type BounceRef,
  bounceKey,
  mintBounceToken,
  readBounceToken,
  returnPathFor,
  tokenOfAddress,
  verpAddress,
} from './bounce-token.js';

const key = bounceKey('a'.repeat(64));
const otherKey = bounceKey('b'.repeat(64));

describe('bounce tokens (VERP)', () => {
  it.each<BounceRef>([
    { kind: 'digest', digestId: '46', subscriberId: '100' },
    { kind: 'digest', digestId: '9223372036854775807', subscriberId: '9223372036854775807' },
    { kind: 'confirmation', subscriberId: '1' },
    { kind: 'guide', subscriberId: '123456789' },
    { kind: 'test', digestId: '7' },
  ])('round-trips %j in a short local-part-safe token', (ref) => {
    const token = mintBounceToken(key, ref);
    expect(token).toMatch(/^[a-z0-9-]+$/);
    const address = verpAddress(key, 'bounces.example.com', ref);
    expect(address.slice(0, address.indexOf('@')).length).toBeLessThanOrEqual(64);
    expect(readBounceToken(key, token)).toEqual(ref);
    // Relays may change a local part's case: the token reads the same.
    expect(readBounceToken(key, token.toUpperCase())).toEqual(ref);
  });

  it('names the digest and the reader in base36 before the MAC', () => {
    expect(mintBounceToken(key, { kind: 'digest', digestId: '46', subscriberId: '100' })).toMatch(
      /^d1a-2s-[a-z2-7]{16}$/,
    );
  });

  it('refuses a token signed with another key, tampered with, truncated or unsigned', () => {
    const token = mintBounceToken(key, { kind: 'digest', digestId: '46', subscriberId: '100' });
    expect(readBounceToken(otherKey, token)).toBeNull();
    // Another reader, same MAC.
    expect(readBounceToken(key, token.replace('-2s-', '-2t-'))).toBeNull();
    // Another kind, same ids and MAC.
    expect(readBounceToken(key, `t${token.slice(1)}`)).toBeNull();
    const sig = token.slice(-16);
    const flipped = sig[0] === 'a' ? `b${sig.slice(1)}` : `a${sig.slice(1)}`;
    expect(readBounceToken(key, token.slice(0, -16) + flipped)).toBeNull();
    expect(readBounceToken(key, token.slice(0, -1))).toBeNull();
    expect(readBounceToken(key, 'd1a-2s')).toBeNull();
    expect(readBounceToken(key, '')).toBeNull();
    expect(readBounceToken(key, `${token}x`)).toBeNull();
  });

  it('refuses non-canonical ids (leading zeros) even under a valid-looking shape', () => {
    // A MAC over the non-canonical body would be needed; a minted token never has one.
    const token = mintBounceToken(key, { kind: 'confirmation', subscriberId: '5' });
    expect(readBounceToken(key, token.replace('c-5-', 'c-05-'))).toBeNull();
  });

  it('refuses ids that are not ids when minting', () => {
    expect(() => mintBounceToken(key, { kind: 'confirmation', subscriberId: '01' })).toThrow(/Not an id/);
    expect(() => mintBounceToken(key, { kind: 'digest', digestId: 'x', subscriberId: '1' })).toThrow(/Not an id/);
  });

  it('finds the token only in bounces+…@ the bounce domain', () => {
    expect(tokenOfAddress('bounces+abc@bounces.example.com', 'bounces.example.com')).toBe('abc');
    expect(tokenOfAddress('BOUNCES+abc@Bounces.Example.COM', 'bounces.example.com')).toBe('abc');
    expect(tokenOfAddress('bounces+abc@evil.example.com', 'bounces.example.com')).toBeNull();
    expect(tokenOfAddress('postmaster@bounces.example.com', 'bounces.example.com')).toBeNull();
    expect(tokenOfAddress('bounces+@bounces.example.com', 'bounces.example.com')).toBeNull();
    expect(tokenOfAddress('bounces', 'bounces.example.com')).toBeNull();
  });

  it('returnPathFor: the VERP address with BOUNCE_DOMAIN, nothing without', () => {
    const ref: BounceRef = { kind: 'guide', subscriberId: '3' };
    expect(returnPathFor({ appSecret: 'a'.repeat(64) }, ref)).toBeUndefined();
    expect(returnPathFor({ appSecret: 'a'.repeat(64), bounces: { domain: 'b.example.com' } }, ref)).toBe(
      verpAddress(key, 'b.example.com', ref),
    );
  });
});
