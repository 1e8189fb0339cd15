import 'reflect-metadata';
import { parse } from 'csv-parse/sync';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { emailHash } from '#subscriptions/tokens.js';
import { admin } from './support/admin.js';
import { ADMIN_KEY } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

describe('bulk import and export of subscribers', () => {
  const stack = useStack({ label: 'import' });

  const importCsv = (slug: string, csv: string | ReadableStream<Uint8Array>) =>
    fetch(`${stack.apps.baseUrl}/v1/newsletters/${slug}/subscribers/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'text/csv' },
      body: csv,
      duplex: 'half',
    } as RequestInit);

  type Report = {
    created: number;
    updated: number;
    skipped: number;
    invalid: number;
    invalidLines: { line: number; reason: string }[];
    notes: string[];
  };
  const HEADER = 'email,name,topics,timezone,consented_at,source';
  /** A streamed body of `rows` rows (`row(i)` for line i + 2), sent in chunks of 100 rows. */
  const streamed = (rows: number, row: (i: number) => string) => {
    const encoder = new TextEncoder();
    let i = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        let chunk = i === 0 ? `${HEADER}\n` : '';
        for (const end = Math.min(i + 100, rows); i < end; i += 1) chunk += `${row(i)}\n`;
        controller.enqueue(encoder.encode(chunk));
        if (i >= rows) controller.close();
      },
    });
  };
  const countLike = async (pattern: string) =>
    Number(
      (
        await query<{ n: string }>(stack.db.url, `SELECT count(*) AS n FROM subscribers WHERE email LIKE $1`, [pattern])
      )[0].n,
    );

  beforeAll(async () => {
    await addAudience(stack.db.url, {
      prefix: 'left',
      count: 1,
      newsletter: 'spine-health',
      subscription: 'unsubscribed',
    });
    await addAudience(stack.db.url, {
      prefix: 'waiting',
      count: 1,
      newsletter: 'spine-health',
      subscription: 'pending',
    });
    await query(stack.db.url, `INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'bounced')`, [
      emailHash(stack.apps.config.appSecret, 'blocked@example.com'),
    ]);
  });

  it('imports consented subscribers as active, skips suppressed and unsubscribed, reports invalid lines', async () => {
    const csv = [
      'email,name,topics,timezone,consented_at,source',
      'new1@example.com,New One,Neck Pain;Sciatica,America/Chicago,2025-05-01T10:00:00Z,https://www.spine-health.example/old-form',
      'NEW2@Example.com,,,,2025-05-02,',
      'waiting1@example.com,Waiting,,,2025-05-03T00:00:00Z,',
      'left1@example.com,Left,,,2025-05-03T00:00:00Z,',
      'blocked@example.com,Blocked,,,2025-05-03T00:00:00Z,',
      'not-an-email,Bad,,,2025-05-03T00:00:00Z,',
      'noconsent@example.com,No consent,,,,',
      'badzone@example.com,Zone,,Mars/Base,2025-05-03T00:00:00Z,',
      '"=HYPERLINK(""x"")@example.com",Formula,,,2025-05-03T00:00:00Z,',
    ].join('\n');
    const res = await importCsv('spine-health', csv);
    expect(res.status).toBe(200);
    const report = (await res.json()) as {
      created: number;
      updated: number;
      skipped: number;
      invalid: number;
      invalidLines: { line: number; reason: string }[];
    };
    expect(report).toMatchObject({ created: 2, updated: 1, skipped: 2, invalid: 4 });
    expect(report.invalidLines.map((l) => l.line)).toEqual([7, 8, 9, 10]);
    expect(report.invalidLines[1].reason).toMatch(/consented_at/);
    const subs = await query<{ email: string; status: string; topics: string[]; tz: string | null }>(
      stack.db.url,
      `SELECT u.email, s.status, s.topics, u.timezone AS tz FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id ORDER BY u.email`,
    );
    expect(subs).toEqual([
      { email: 'left1@example.com', status: 'unsubscribed', topics: [], tz: null },
      { email: 'new1@example.com', status: 'active', topics: ['Neck Pain', 'Sciatica'], tz: 'America/Chicago' },
      { email: 'new2@example.com', status: 'active', topics: [], tz: null },
      { email: 'waiting1@example.com', status: 'active', topics: [], tz: null },
    ]);
    const consent = await query<{ action: string }>(
      stack.db.url,
      `SELECT action FROM consent_records WHERE action = 'import'`,
    );
    expect(consent).toHaveLength(3);
    expect(stack.smtp.messages).toHaveLength(0);
    expect((await importCsv('nope', csv)).status).toBe(404);
  });

  it('streams a large file without buffering it (20 000 rows)', async () => {
    const rows = 20_000;
    const encoder = new TextEncoder();
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (i === 0) controller.enqueue(encoder.encode('email,name,topics,timezone,consented_at,source\n'));
        const end = Math.min(i + 1000, rows);
        let chunk = '';
        for (; i < end; i += 1) chunk += `bulk${i}@example.com,Bulk ${i},,,2025-01-01T00:00:00Z,\n`;
        controller.enqueue(encoder.encode(chunk));
        if (i >= rows) controller.close();
      },
    });
    const res = await importCsv('arthritis-health', stream);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ created: rows, invalid: 0 });
  });

  it('refuses a file it cannot parse with 400 and the line, and writes none of it', async () => {
    // The bad row at line 2 100 of 2 500: the first 2 000 rows would fill two chunks of 1 000.
    const half = await importCsv(
      'sports-health',
      streamed(2500, (i) =>
        i + 2 === 2100
          ? `half${i}@example.com,Pat "the cat" Smith,,,2025-05-01T10:00:00Z,`
          : `half${i}@example.com,Half,,,2025-05-01T10:00:00Z,`,
      ),
    );
    expect(half.status).toBe(400);
    expect(((await half.json()) as { message: string }).message).toMatch(
      /^The CSV could not be read at line 2100: a quote \(".*Nothing was imported\.$/,
    );
    expect(await countLike('half%')).toBe(0);

    const cases: [string, string | Uint8Array, RegExp][] = [
      [
        'unclosed',
        `${HEADER}\nbad1@example.com,ok,,,2025-05-01,\nbad2@example.com,"Pat,,,2025-05-01,\nbad3@example.com,x,,,2025-05-01,\n`,
        /line 3: a quote opened in this row is never closed/,
      ],
      [
        'huge',
        `${HEADER}\nbad1@example.com,ok,,,2025-05-01,\nbad2@example.com,${'x'.repeat(70_000)},,,2025-05-01,\n`,
        /line 3: a row longer than 64 kB/,
      ],
      [
        'quoted',
        `${HEADER}\nbad1@example.com,ok,,,2025-05-01,\n"quoted"@example.com,x,,,2025-05-01,\n`,
        /line 3: text after the closing quote/,
      ],
      [
        'nul',
        `${HEADER}\nbad1@example.com,ok,,,2025-05-01,\nbad2@example.com,P\0t,,,2025-05-01,\n`,
        /line 3: a NUL byte/,
      ],
      [
        'utf-8 then not',
        Buffer.concat([
          Buffer.from(`${HEADER}\nbad1@example.com,Zoë,,,2025-05-01,\nbad2@example.com,Zo`),
          Buffer.from([0xeb]),
          Buffer.from(',,,2025-05-01,\n'),
        ]),
        /line 3: bytes that are not UTF-8/,
      ],
    ];
    for (const [label, body, message] of cases) {
      const res = await importCsv('sports-health', body as string);
      expect({ label, status: res.status }).toEqual({ label, status: 400 });
      expect(((await res.json()) as { message: string }).message).toMatch(message);
    }
    expect(await countLike('bad%')).toBe(0);

    // Refused at its first line, a 4 MB upload is drained: the answer arrives and the server carries on.
    const early = await importCsv(
      'sports-health',
      streamed(60_000, (i) => `early${i}@example.com,Early,,,2025-05-01,`).pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('no header here\n'));
          },
        }),
      ),
    );
    expect(early.status).toBe(400);
    expect(((await early.json()) as { message: string }).message).toMatch(
      /at line 1: the first line must be the header/,
    );
    const after = await importCsv('sports-health', `${HEADER}\nafter@example.com,After,,,2025-05-01,\n`);
    expect(await after.json()).toMatchObject({ created: 1 });
  });

  it('applies the signup field rules and reads consented_at as strict ISO 8601', async () => {
    const csv = [
      HEADER,
      'ok1@example.com,Ok,,,2025-05-01T12:00:00+02:00,https://www.spine-health.example/form',
      'ok2@example.com,Ok,,,2025-05-01,',
      'num@example.com,Num,,,1,',
      'may@example.com,May,,,May 1,',
      'us@example.com,US,,,5/1/2025 10:00,',
      'local@example.com,Local,,,2025-05-01T10:00:00,',
      'crlf@example.com,Crlf,"Neck\r\nPain",,2025-05-01,',
      'js@example.com,Js,,,2025-05-01,javascript:alert(1)',
      `many@example.com,Many,${Array.from({ length: 21 }, (_, i) => `t${i}`).join(';')},,2025-05-01,`,
      `long@example.com,Long,${'x'.repeat(51)},,2025-05-01,`,
      '"name@example.com","Two\nLines",,,2025-05-01,',
      'shift@example.com,Smith, Pat,,,2025-05-01,https://www.spine-health.example/',
    ].join('\n');
    const res = await importCsv('sports-health', csv);
    expect(res.status).toBe(200);
    const report = (await res.json()) as Report;
    expect(report).toMatchObject({ created: 2, invalid: 10, notes: [] });
    expect(report.invalidLines.map((l) => [l.line, l.reason.replace(/ \(.*| such as .*|: .*/, '')])).toEqual([
      [4, 'consented_at must be an ISO 8601 time with Z or an offset,'],
      [5, 'consented_at must be an ISO 8601 time with Z or an offset,'],
      [6, 'consented_at must be an ISO 8601 time with Z or an offset,'],
      [7, 'consented_at must be an ISO 8601 time with Z or an offset,'],
      [8, 'topics must not contain line breaks'],
      [10, 'source must be an http(s) URL'],
      [11, 'topics must have at most 20 entries'],
      [12, 'topics entries must be at most 50 characters'],
      [13, 'name must not contain line breaks'],
      [15, 'the row has 7 fields and the header 6'],
    ]);
    const stored = await query<{ email: string; confirmed_at: Date }>(
      stack.db.url,
      `SELECT u.email, s.confirmed_at FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
        WHERE u.email IN ('ok1@example.com', 'ok2@example.com') ORDER BY u.email`,
    );
    expect(stored.map((r) => r.confirmed_at.toISOString())).toEqual([
      '2025-05-01T10:00:00.000Z',
      '2025-05-01T00:00:00.000Z',
    ]);
    expect(await countLike('js@example.com')).toBe(0); // invalid rows leave nothing behind
  });

  it('reads semicolon and tab files, BOMs, UTF-16 and Windows-1252, and refuses a file without a header', async () => {
    const semi = await importCsv(
      'sports-health',
      'Email;Name;Topics;Consented_At\nsemi@example.com;Sémi;Neck|Hip;2025-05-01\n',
    );
    expect(await semi.json()).toMatchObject({ created: 1, invalid: 0, notes: [] });
    const tab = await importCsv('sports-health', 'email\tname\tconsented_at\ntab@example.com\tTab, Jr.\t2025-05-01\n');
    expect(await tab.json()).toMatchObject({ created: 1, invalid: 0 });
    const bom = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from(`${HEADER}\nbom@example.com,Böm,,,2025-05-01,\n`),
    ]);
    expect(await (await importCsv('sports-health', bom as unknown as string)).json()).toMatchObject({ created: 1 });
    const utf16 = Buffer.concat([
      Buffer.from([0xff, 0xfe]),
      Buffer.from(`${HEADER}\r\nwide@example.com,Wïde 😀,,,2025-05-01,\r\n`, 'utf16le'),
    ]);
    expect(await (await importCsv('sports-health', utf16 as unknown as string)).json()).toMatchObject({ created: 1 });
    const latin = Buffer.concat([
      Buffer.from(`${HEADER}\nlatin@example.com,Zo`),
      Buffer.from([0xeb, 0x20, 0x80]),
      Buffer.from(',,,2025-05-01,\n'),
    ]);
    const latinReport = (await (await importCsv('sports-health', latin as unknown as string)).json()) as Report;
    expect(latinReport).toMatchObject({
      created: 1,
      notes: [expect.stringMatching(/^The file is not UTF-8 \(line 2\): it was read as Windows-1252/)],
    });
    const names = await query<{ email: string; name: string; topics: string[] }>(
      stack.db.url,
      `SELECT u.email, u.name, s.topics FROM subscribers u JOIN subscriptions s ON s.subscriber_id = u.id
        WHERE u.email IN ('semi@example.com', 'tab@example.com', 'bom@example.com', 'wide@example.com', 'latin@example.com') ORDER BY u.email`,
    );
    expect(names).toEqual([
      { email: 'bom@example.com', name: 'Böm', topics: [] },
      { email: 'latin@example.com', name: 'Zoë €', topics: [] },
      { email: 'semi@example.com', name: 'Sémi', topics: ['Neck', 'Hip'] },
      { email: 'tab@example.com', name: 'Tab, Jr.', topics: [] },
      { email: 'wide@example.com', name: 'Wïde 😀', topics: [] },
    ]);

    const headless = await importCsv(
      'sports-health',
      'first@example.com,First,,,2025-05-01,\nsecond@example.com,Second,,,2025-05-01,\n',
    );
    expect(headless.status).toBe(400);
    expect(((await headless.json()) as { message: string }).message).toBe(
      `The CSV could not be read at line 1: the first line must be the header naming the columns, separated by commas, semicolons or tabs: ${HEADER} (it is "first@example.com,First,,,2025-05-01,"). Nothing was imported.`,
    );
    expect(await countLike('%second@example.com')).toBe(0);
    const noConsent = await importCsv('sports-health', 'email,name\nnoconsent@example.com,No\n');
    expect(noConsent.status).toBe(400);
    expect(((await noConsent.json()) as { message: string }).message).toMatch(
      /line 1: the header must name the column consented_at/,
    );
  });

  it('the console answers a file it cannot parse with 400 naming the line, by script and by form', async () => {
    const users = stack.apps.api.get(StaffUsersService);
    const login = { email: 'importer@example.com', password: 'correct horse battery staple' };
    expect((await users.create({ ...login, role: 'admin' })).ok).toBe(true);
    const browser = new ConsoleBrowser(stack.apps.baseUrl);
    expect((await browser.signIn(login.email, login.password)).status).toBe(303);
    const csv = `${HEADER}\nconsole1@example.com,One,,,2025-05-01,\nconsole2@example.com,Pat "the cat" Smith,,,2025-05-01,\n`;
    const script = await browser.request('POST', '/admin/subscribers/import?newsletter=sports-health', csv, {
      'content-type': 'text/csv',
      accept: 'application/json',
      'x-csrf-token': await browser.csrfToken(),
    });
    expect(script.status).toBe(400);
    expect((JSON.parse(script.text) as { message: string }).message).toMatch(
      /^The CSV could not be read at line 3: a quote/,
    );
    const form = await browser.get('/admin/subscribers/import');
    const posted = await browser.post('/admin/subscribers/import', {
      _csrf: ConsoleBrowser.csrf(form.text),
      newsletter: 'sports-health',
      csv,
    });
    expect(posted.status).toBe(400);
    expect(posted.text).toContain('The CSV could not be read at line 3: a quote');
    expect(await countLike('console%')).toBe(0);
  });

  it('exports a newsletter as CSV, streamed and safe to open in a spreadsheet', async () => {
    await query(stack.db.url, `UPDATE subscribers SET name = '=cmd()' WHERE email = 'new2@example.com'`);
    const res = await admin<string>(stack.apps.baseUrl, 'GET', '/v1/newsletters/spine-health/subscribers/export');
    expect(res.status).toBe(200);
    const records = parse(res.text, { columns: true }) as Record<string, string>[];
    expect(records.map((r) => r.email)).toEqual([
      'left1@example.com',
      'waiting1@example.com',
      'new1@example.com',
      'new2@example.com',
    ]);
    expect(records.find((r) => r.email === 'new2@example.com')!.name).toBe("'=cmd()");
    expect(Object.keys(records[0])).toEqual([
      'email',
      'name',
      'topics',
      'timezone',
      'status',
      'consented_at',
      'source',
    ]);
    const big = await fetch(`${stack.apps.baseUrl}/v1/newsletters/arthritis-health/subscribers/export`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect((await big.text()).trim().split('\n')).toHaveLength(20_001);
  });
});
