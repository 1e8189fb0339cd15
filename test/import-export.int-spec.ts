import 'reflect-metadata';
import { parse } from 'csv-parse/sync';
import { emailHash } from '../libs/subscriptions/src/tokens.js';
import { admin } from './support/admin.js';
import { ADMIN_KEY, type RunningApps, startApps, testConfig } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { createTestDatabase, query, seedDatabase } from './support/db.js';
import { TestSmtp } from './support/smtp.js';

describe('bulk import and export of subscribers', () => {
  let db: { url: string; drop: () => Promise<void> };
  let smtp: TestSmtp;
  let apps: RunningApps;

  const importCsv = (slug: string, csv: string | ReadableStream<Uint8Array>) =>
    fetch(`${apps.baseUrl}/v1/newsletters/${slug}/subscribers/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'text/csv' },
      body: csv,
      duplex: 'half',
    } as RequestInit);

  beforeAll(async () => {
    db = await createTestDatabase('import');
    await seedDatabase(db.url);
    smtp = await new TestSmtp().start();
    apps = await startApps(testConfig({ dbUrl: db.url, smtpUrl: smtp.url, backend: 'postgres' }));
    await addAudience(db.url, { prefix: 'left', count: 1, newsletter: 'spine-health', subscription: 'unsubscribed' });
    await addAudience(db.url, { prefix: 'waiting', count: 1, newsletter: 'spine-health', subscription: 'pending' });
    await query(db.url, `INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'bounced')`, [
      emailHash(apps.config.appSecret, 'blocked@example.com'),
    ]);
  });

  afterAll(async () => {
    await apps?.close();
    await smtp?.stop();
    await db?.drop();
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
      db.url,
      `SELECT u.email, s.status, s.topics, u.timezone AS tz FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id ORDER BY u.email`,
    );
    expect(subs).toEqual([
      { email: 'left1@example.com', status: 'unsubscribed', topics: [], tz: null },
      { email: 'new1@example.com', status: 'active', topics: ['Neck Pain', 'Sciatica'], tz: 'America/Chicago' },
      { email: 'new2@example.com', status: 'active', topics: [], tz: null },
      { email: 'waiting1@example.com', status: 'active', topics: [], tz: null },
    ]);
    const consent = await query<{ action: string }>(
      db.url,
      `SELECT action FROM consent_records WHERE action = 'import'`,
    );
    expect(consent).toHaveLength(3);
    expect(smtp.messages).toHaveLength(0);
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

  it('exports a newsletter as CSV, streamed and safe to open in a spreadsheet', async () => {
    await query(db.url, `UPDATE subscribers SET name = '=cmd()' WHERE email = 'new2@example.com'`);
    const res = await admin<string>(apps.baseUrl, 'GET', '/v1/newsletters/spine-health/subscribers/export');
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
    const big = await fetch(`${apps.baseUrl}/v1/newsletters/arthritis-health/subscribers/export`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect((await big.text()).trim().split('\n')).toHaveLength(20_001);
  });
});
