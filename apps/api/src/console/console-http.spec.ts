import { loginCsrfToken, loginCsrfValid, loginUrl, newLoginCsrfNonce, safeNext } from './console-http.js';

describe('safeNext: only console paths may follow sign-in', () => {
  it.each(['/admin', '/admin/users', '/admin/users/2?notice=created', '/admin/queues/queue/mail', '/admin?x=1'])(
    'keeps %s',
    (next) => expect(safeNext(next)).toBe(next),
  );

  it.each([
    undefined,
    42,
    '',
    'https://evil.example/admin',
    '//evil.example/admin',
    '/\\evil.example',
    '/administrator',
    '/docs',
    'admin',
    '/admin/\nLocation: x',
    '/admin/login?next=/admin',
    '/admin/logout',
    `/admin/${'x'.repeat(1000)}`,
    // Dot segments resolve before the prefix check: these all leave the console.
    '/admin/../..//x',
    '/admin/../../evil.example',
    '/admin/..//evil.example',
    '/admin/../docs',
    '/admin/./../docs',
    '/admin/%2e%2e/docs',
    '/admin/%2E%2E/%2e%2e//evil.example',
    '/admin/.%2e/docs',
    '/admin/x/../../docs?next=/admin',
    '/admin/users/../login',
    '/admin/./logout',
    // Encoded slashes and backslashes, in either case.
    '/admin/..%2f..%2fevil.example',
    '/admin%2f..%2fdocs',
    '/admin/%2F%2Fevil.example',
    '/admin/..%5c..%5cevil.example',
    '/admin/%5C%5Cevil.example',
    // Backslashes and control characters that a URL parser turns into something else.
    '/admin\\..\\..\\evil.example',
    '\\\\evil.example/admin',
    '/\\/evil.example/admin',
    '/admin/\t/../../x',
    '/\t/evil.example',
    '/admin\r\nSet-Cookie: x=1',
    '/admin/\u0000',
    '/admin/\u007f',
    // Other origins and schemes, however spelled.
    '///evil.example/admin',
    'javascript:alert(1)//admin',
    'http:/admin',
    'HTTPS://evil.example/admin',
    ' /admin',
    '/admin//evil.example',
    '/admin/users//x',
    '/Admin',
    '/ad%6din',
  ])('replaces %p with /admin', (next) => expect(safeNext(next)).toBe('/admin'));

  it.each([
    ['/admin/./users', '/admin/users'],
    ['/admin/x/../users?y=1', '/admin/users?y=1'],
    ['/admin/users/%2e%2e/suppressions', '/admin/suppressions'],
    ['/admin/ü', '/admin/%C3%BC'],
    ['/admin?next=//evil.example', '/admin?next=//evil.example'],
    ['/admin/users#new-user', '/admin/users#new-user'],
  ])('resolves %p to %p, still inside the console', (next, resolved) => expect(safeNext(next)).toBe(resolved));

  it('builds the sign-in URL with next only when it leads somewhere else than home', () => {
    expect(loginUrl('/admin')).toBe('/admin/login');
    expect(loginUrl()).toBe('/admin/login');
    expect(loginUrl('/admin/users?a=1')).toBe('/admin/login?next=%2Fadmin%2Fusers%3Fa%3D1');
    expect(loginUrl('https://evil.example')).toBe('/admin/login');
  });
});

describe('sign-in CSRF token: an HMAC of the cookie nonce', () => {
  const secret = 'x'.repeat(64);

  it('accepts only the token minted for that nonce under that secret', () => {
    const nonce = newLoginCsrfNonce();
    const token = loginCsrfToken(secret, nonce);
    expect(token).not.toBe(nonce);
    expect(loginCsrfValid(secret, nonce, token)).toBe(true);
    expect(loginCsrfValid('y'.repeat(64), nonce, token)).toBe(false);
    expect(loginCsrfValid(secret, newLoginCsrfNonce(), token)).toBe(false);
  });

  it('refuses a cookie/field pair chosen by someone else, and malformed nonces', () => {
    const chosen = 'A'.repeat(43);
    expect(loginCsrfValid(secret, chosen, chosen)).toBe(false);
    expect(loginCsrfValid(secret, undefined, loginCsrfToken(secret, ''))).toBe(false);
    expect(loginCsrfValid(secret, 'short', loginCsrfToken(secret, 'short'))).toBe(false);
    expect(loginCsrfValid(secret, chosen, '')).toBe(false);
  });
});
