import { loginUrl, safeNext } from './console-http.js';

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
  ])('replaces %p with /admin', (next) => expect(safeNext(next)).toBe('/admin'));

  it('builds the sign-in URL with next only when it leads somewhere else than home', () => {
    expect(loginUrl('/admin')).toBe('/admin/login');
    expect(loginUrl()).toBe('/admin/login');
    expect(loginUrl('/admin/users?a=1')).toBe('/admin/login?next=%2Fadmin%2Fusers%3Fa%3D1');
    expect(loginUrl('https://evil.example')).toBe('/admin/login');
  });
});
