import { normalizeEmail, type EmailCheck } from './email.js';

function accepted(input: unknown): string {
  const r: EmailCheck = normalizeEmail(input);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(input)} to be accepted, got "${r.reason}"`);
  return r.email;
}

function rejection(input: unknown): string {
  const r: EmailCheck = normalizeEmail(input);
  if (r.ok) throw new Error(`expected ${JSON.stringify(input)} to be rejected, got "${r.email}"`);
  return r.reason;
}

describe('normalizeEmail', () => {
  describe('accepts and normalises', () => {
    it.each<[string, string]>([
      ['a@b.com', 'a@b.com'],
      ['John.Doe@Example.COM', 'john.doe@example.com'],
      ['  padded@example.com  ', 'padded@example.com'],
      ['\tTabbed@Example.org\t', 'tabbed@example.org'],
      ["o'brien+news@sub.example.co.uk", "o'brien+news@sub.example.co.uk"],
      ['first_last-1@my-domain.example', 'first_last-1@my-domain.example'],
      ['user@bücher.example', 'user@xn--bcher-kva.example'],
      ['User@BÜCHER.Example', 'user@xn--bcher-kva.example'],
      ['user@xn--bcher-kva.example', 'user@xn--bcher-kva.example'],
    ])('%j → %j', (input, expected) => {
      expect(normalizeEmail(input)).toEqual({ ok: true, email: expected });
    });

    it('accepts a local part of exactly 64 characters', () => {
      const local = 'a'.repeat(64);
      expect(accepted(`${local}@example.com`)).toBe(`${local}@example.com`);
    });

    it('accepts an address of exactly 254 characters', () => {
      const domain = `${'d'.repeat(63)}.${'e'.repeat(63)}.${'f'.repeat(63)}.com`; // 195
      const local = 'l'.repeat(254 - 1 - domain.length); // 58
      const email = `${local}@${domain}`;
      expect(email).toHaveLength(254);
      expect(accepted(email)).toBe(email);
    });

    it('is idempotent', () => {
      const once = accepted('  Mixed.Case@Bücher.Example ');
      expect(accepted(once)).toBe(once);
    });
  });

  describe('rejects', () => {
    const longDomain = `${'d'.repeat(63)}.${'e'.repeat(63)}.${'f'.repeat(63)}.com`;
    it.each<[string, unknown]>([
      ['CR/LF header injection', 'a@b.com\r\nBcc: x@y.com'],
      ['a lone LF', 'a@b.com\nBcc: x@y.com'],
      ['a lone CR', 'a@b.com\rBcc: x@y.com'],
      ['a trailing CRLF (not trimmed away)', 'a@b.com\r\n'],
      ['a leading LF', '\na@b.com'],
      ['CR/LF in the local part', 'a\r\n@b.com'],
      ['a NUL byte', 'a@b.com\0'],
      ['a quoted local part', '"a@b x"@evil.test'],
      ['a simple quoted local part', '"a"@b.com'],
      ['a display-name form', 'Name <a@b.com>'],
      ['angle brackets only', '<a@b.com>'],
      ['a comma list', 'a@b.com,c@d.com'],
      ['a comma-space list', 'a@b.com, c@d.com'],
      ['a semicolon list', 'a@b.com;c@d.com'],
      ['a space in the local part', 'a b@c.com'],
      ['a space in the domain', 'a@b c.com'],
      ['a space around @', 'a @b.com'],
      ['no @', 'ab.com'],
      ['nothing before @', '@b.com'],
      ['nothing after @', 'a@'],
      ['two @', 'a@b@c.com'],
      ['empty', ''],
      ['whitespace only', '   '],
      ['more than 254 characters', `${'l'.repeat(59)}@${longDomain}`],
      ['far more than 254 characters', `${'a'.repeat(60)}@${'b'.repeat(300)}.com`],
      ['a local part over 64 characters', `${'a'.repeat(65)}@example.com`],
      ['a domain without a dot', 'a@localhost'],
      ['a numeric TLD', 'a@b.123'],
      ['an IP literal', 'a@[127.0.0.1]'],
      ['a bare IPv4 domain', 'a@127.0.0.1'],
      ['a leading dot in the local part', '.a@b.com'],
      ['a trailing dot in the local part', 'a.@b.com'],
      ['a double dot in the local part', 'a..b@b.com'],
      ['a label starting with -', 'a@-b.com'],
      ['a label ending with -', 'a@b-.com'],
      ['a TLD starting with -', 'a@b.-com'],
      ['a TLD ending with -', 'a@b.com-'],
      ['a trailing dot in the domain', 'a@b.com.'],
      ['a leading dot in the domain', 'a@.b.com'],
      ['a double dot in the domain', 'a@b..com'],
      ['an underscore in the domain', 'a@b_c.com'],
      ['a label over 63 characters', `a@${'x'.repeat(64)}.com`],
      ['non-ASCII in the local part', 'üser@example.com'],
      ['a backslash', 'a\\b@example.com'],
      ['parentheses (comments)', 'a(comment)@example.com'],
      ['a number', 12345],
      ['null', null],
      ['undefined', undefined],
      ['an object', { email: 'a@b.com' }],
      ['an array', ['a@b.com']],
      ['a boolean', true],
      ['a String object', new String('a@b.com')],
    ])('%s', (_label, input) => {
      const reason = rejection(input);
      expect(reason.startsWith('email')).toBe(true);
    });

    it('gives a specific reason for non-strings, line breaks, empty and too long', () => {
      expect(rejection(42)).toBe('email must be a string');
      expect(rejection('a@b.com\r\nBcc: x@y.com')).toMatch(/^email .*line breaks/);
      expect(rejection('')).toMatch(/^email .*required/);
      expect(rejection(`${'a'.repeat(60)}@${'b'.repeat(300)}.com`)).toMatch(/^email .*254/);
    });

    it('rejects an address that only exceeds 254 characters after punycode conversion', () => {
      // 250 characters as typed, longer once the IDN domain is converted to ASCII.
      const domain = `${'ü'.repeat(40)}.${'d'.repeat(63)}.${'e'.repeat(63)}.com`;
      const email = `${'l'.repeat(250 - 1 - domain.length)}@${domain}`;
      expect(email).toHaveLength(250);
      expect(rejection(email)).toMatch(/^email/);
    });
  });
});
