/** A minimal browser for the staff console tests: keeps cookies, posts forms, never follows redirects. */
export interface Page {
  status: number;
  text: string;
  headers: Headers;
  location: string | null;
  setCookies: string[];
}

export class ConsoleBrowser {
  readonly cookies = new Map<string, string>();

  constructor(
    readonly baseUrl: string,
    private readonly extraHeaders: Record<string, string> = {},
  ) {}

  get session(): string | undefined {
    return this.cookies.get('mailroom_session');
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Page> {
    return this.request('GET', path, undefined, headers);
  }

  async post(path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Page> {
    return this.request('POST', path, new URLSearchParams(form).toString(), {
      'content-type': 'application/x-www-form-urlencoded',
      ...headers,
    });
  }

  async request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Page> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      body,
      redirect: 'manual',
      headers: { accept: 'text/html', ...(cookie ? { cookie } : {}), ...this.extraHeaders, ...headers },
    });
    const setCookies = res.headers.getSetCookie();
    for (const c of setCookies) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = /max-age=0/i.test(c) || /expires=Thu, 01 Jan 1970/i.test(c);
      if (!value || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return {
      status: res.status,
      text: await res.text(),
      headers: res.headers,
      location: res.headers.get('location'),
      setCookies,
    };
  }

  /** The `_csrf` value of the first form on a page. */
  static csrf(html: string): string {
    const m = /name="_csrf" value="([^"]*)"/.exec(html);
    if (!m) throw new Error(`No _csrf field in:\n${html.slice(0, 1500)}`);
    return m[1];
  }

  /** Opens the sign-in page and submits it. */
  async signIn(email: string, password: string, next?: string): Promise<Page> {
    const page = await this.get(next ? `/admin/login?next=${encodeURIComponent(next)}` : '/admin/login');
    const form: Record<string, string> = { _csrf: ConsoleBrowser.csrf(page.text), email, password };
    const nextField = /name="next" value="([^"]*)"/.exec(page.text);
    if (nextField)
      form.next = nextField[1]
        .replace(/&#x2F;/g, '/')
        .replace(/&#x3D;/g, '=')
        .replace(/&amp;/g, '&');
    return this.post('/admin/login', form);
  }

  /** A console page's CSRF token (from the sign-out form every signed-in page carries). */
  async csrfToken(): Promise<string> {
    const page = await this.get('/admin');
    if (page.status !== 200) throw new Error(`Not signed in: GET /admin answered ${page.status}`);
    return ConsoleBrowser.csrf(page.text);
  }
}
