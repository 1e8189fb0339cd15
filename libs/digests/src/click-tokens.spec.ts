import { articlePart, clickKey, readerPart, verifyClickToken } from './click-tokens.js';

const key = clickKey('a-test-secret-of-enough-length-000000');

describe('click tokens', () => {
  const token = `${articlePart(key, '42', '7')}.${readerPart(key, '42', '1001')}`;

  it('names the digest, article and reader it was minted for', () => {
    expect(verifyClickToken(key, token)).toEqual({ digestId: '42', articleId: '7', subscriberId: '1001' });
    expect(token).toMatch(/^[A-Za-z0-9._-]+$/);
  });

  it('reader 0 is nobody: valid, with no subscriber', () => {
    const t = `${articlePart(key, '42', '7')}.${readerPart(key, '42', '0')}`;
    expect(verifyClickToken(key, t)).toEqual({ digestId: '42', articleId: '7', subscriberId: null });
  });

  it('refuses any change of a field, a MAC or the key', () => {
    const [d, a, am, s, sm] = token.split('.');
    const flip = (mac: string) => (mac[0] === 'A' ? 'B' : 'A') + mac.slice(1);
    for (const bad of [
      [d, '8', am, s, sm],
      ['43', a, am, s, sm],
      [d, a, am, '1002', sm],
      [d, a, flip(am), s, sm],
      [d, a, am, s, flip(sm)],
      [d, a, am, s],
      [`0${d}`, a, am, s, sm],
    ])
      expect(verifyClickToken(key, bad.join('.'))).toBeNull();
    expect(verifyClickToken(clickKey('another-secret-of-enough-length-0000'), token)).toBeNull();
    for (const junk of ['', '.', 'x'.repeat(5000), `${token}\u0000`, `${token}.`, token.replace('.', '%2E')])
      expect(verifyClickToken(key, junk)).toBeNull();
  });

  it('halves of two digests do not combine', () => {
    const other = `${articlePart(key, '43', '7')}.${readerPart(key, '42', '1001')}`;
    expect(verifyClickToken(key, other)).toBeNull();
  });
});
