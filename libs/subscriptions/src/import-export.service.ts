import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { parse } from 'csv-parse';
import { stringify } from 'csv-stringify';
import { Readable } from 'node:stream';
import type { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../config/src/config.js';
import { rows } from '../../db/src/sql.js';
import { normalizeEmail } from './email.js';
import { emailHash } from './tokens.js';

export interface ImportReport {
  created: number;
  updated: number;
  skipped: number;
  invalid: number;
  /** Line numbers (1 = the header) of the first invalid rows, with why. */
  invalidLines: { line: number; reason: string }[];
}

interface Row {
  line: number;
  email: string;
  name: string | null;
  topics: string[];
  timezone: string | null;
  consentedAt: Date;
  source: string | null;
}

const CHUNK = 1000;
const MAX_REPORTED = 20;
const COLUMNS = ['email', 'name', 'topics', 'timezone', 'consented_at', 'source'];

const zones = new Map<string, boolean>();

/** Building an Intl.DateTimeFormat costs ~50 µs: an import asks about the same few zones a million times. */
function validZone(tz: string): boolean {
  let ok = zones.get(tz);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      ok = true;
    } catch {
      ok = false;
    }
    if (zones.size < 2000) zones.set(tz, ok);
  }
  return ok;
}

/** Spreadsheet apps run cells that start with these: neutralise them in exports. */
function cell(v: string | null): string {
  if (v === null) return '';
  return /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
}

/**
 * Bulk import of already-consented subscribers (streamed, set-based in chunks: memory does not
 * grow with the file) and a streamed CSV export.
 */
@Injectable()
export class ImportExportService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private async newsletterId(slug: string): Promise<number> {
    const r = await rows<{ id: number }>(this.ds, `SELECT id FROM newsletters WHERE slug = $1`, [slug]);
    if (r.length === 0) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
    return r[0].id;
  }

  private check(record: Record<string, string>, line: number): Row | { line: number; reason: string } {
    const email = normalizeEmail(record.email ?? '');
    if (!email.ok) return { line, reason: email.reason };
    const name = (record.name ?? '').trim();
    if (name.length > 100 || /[\r\n]/.test(name))
      return { line, reason: 'name must be at most 100 characters on one line' };
    const tz = (record.timezone ?? '').trim();
    if (tz && !validZone(tz)) return { line, reason: 'timezone must be an IANA time zone' };
    const consented = new Date((record.consented_at ?? '').trim());
    if (!record.consented_at?.trim() || Number.isNaN(consented.getTime())) {
      return { line, reason: 'consented_at must be the date the subscriber consented (ISO 8601)' };
    }
    if (consented.getTime() > Date.now() + 86_400_000) return { line, reason: 'consented_at is in the future' };
    const topics = (record.topics ?? '')
      .split(/[;|]/)
      .map((t) => t.trim())
      .filter((t) => t.length > 0 && t.length <= 50)
      .slice(0, 20);
    const source = (record.source ?? '').trim();
    return {
      line,
      email: email.email,
      name: name || null,
      topics,
      timezone: tz || null,
      consentedAt: consented,
      source: source ? source.slice(0, 2048) : null,
    };
  }

  async import(slug: string, input: Readable): Promise<ImportReport> {
    const newsletterId = await this.newsletterId(slug);
    const report: ImportReport = { created: 0, updated: 0, skipped: 0, invalid: 0, invalidLines: [] };
    const parser = input.pipe(
      parse({
        columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
        skip_empty_lines: true,
        trim: false,
        relax_column_count: true,
        bom: true,
        max_record_size: 64 * 1024,
      }),
    );
    let chunk: Row[] = [];
    let line = 1;
    // One chunk is written while the next one is parsed; chunks still reach the database in order.
    let writing: Promise<void> = Promise.resolve();
    const write = async (batch: Row[]) => {
      await writing;
      const next = this.importChunk(newsletterId, batch, report);
      next.catch(() => undefined); // awaited (and so rethrown) before the next chunk or at the end
      writing = next;
    };
    for await (const record of parser as AsyncIterable<Record<string, string>>) {
      line += 1;
      const checked = this.check(record, line);
      if ('reason' in checked) {
        report.invalid += 1;
        if (report.invalidLines.length < MAX_REPORTED) report.invalidLines.push(checked);
        continue;
      }
      chunk.push(checked);
      if (chunk.length >= CHUNK) {
        await write(chunk);
        chunk = [];
      }
    }
    if (chunk.length) await write(chunk);
    await writing;
    return report;
  }

  private async importChunk(newsletterId: number, all: Row[], report: ImportReport): Promise<void> {
    // The last line for an address wins within a chunk.
    const byEmail = new Map(all.map((r) => [r.email, r]));
    report.skipped += all.length - byEmail.size;
    let list = [...byEmail.values()];
    await this.ds.transaction(async (em: EntityManager) => {
      const hashes = list.map((r) => emailHash(this.config.appSecret, r.email));
      const suppressed = new Set(
        (
          await rows<{ h: Buffer }>(
            em,
            `SELECT email_hash AS h FROM suppressions WHERE email_hash = ANY($1::bytea[])`,
            [hashes],
          )
        ).map((x) => x.h.toString('hex')),
      );
      const before = list.length;
      list = list.filter((_, i) => !suppressed.has(hashes[i].toString('hex')));
      report.skipped += before - list.length;
      if (list.length === 0) return;

      const subs = await rows<{ id: string; email: string; status: string }>(
        em,
        `INSERT INTO subscribers (email, name, timezone)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
         ON CONFLICT (email) DO UPDATE SET name = COALESCE(EXCLUDED.name, subscribers.name),
           timezone = COALESCE(EXCLUDED.timezone, subscribers.timezone), updated_at = now()
         RETURNING id, email, status`,
        [list.map((r) => r.email), list.map((r) => r.name), list.map((r) => r.timezone)],
      );
      const ok = new Map(subs.filter((s) => s.status === 'ok').map((s) => [s.email, s.id]));
      report.skipped += list.length - ok.size;
      const mailable = list.filter((r) => ok.has(r.email));
      if (mailable.length === 0) return;
      const ids = mailable.map((r) => ok.get(r.email)!);
      // New → active; pending → active; active → topics refreshed; unsubscribed → left alone (they chose to leave).
      const result = await rows<{ subscriber_id: string; created: boolean; changed: boolean }>(
        em,
        `WITH input AS (
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[]) AS t(subscriber_id, topics, consented_at, source))
         INSERT INTO subscriptions (subscriber_id, newsletter_id, status, topics, source, confirmed_at)
         SELECT i.subscriber_id, $5, 'active', CASE WHEN i.topics = '' THEN '{}'::text[] ELSE string_to_array(i.topics, '|') END, i.source, i.consented_at
         FROM input i
         ON CONFLICT (subscriber_id, newsletter_id) DO UPDATE SET
           status = CASE WHEN subscriptions.status = 'pending' THEN 'active' ELSE subscriptions.status END,
           confirmed_at = CASE WHEN subscriptions.status = 'pending' THEN EXCLUDED.confirmed_at ELSE subscriptions.confirmed_at END,
           topics = CASE WHEN cardinality(EXCLUDED.topics) > 0 THEN EXCLUDED.topics ELSE subscriptions.topics END
         WHERE subscriptions.status <> 'unsubscribed'
         RETURNING subscriber_id, (xmax = 0) AS created, true AS changed`,
        [
          ids,
          mailable.map((r) => r.topics.join('|')),
          mailable.map((r) => r.consentedAt.toISOString()),
          mailable.map((r) => r.source),
          newsletterId,
        ],
      );
      const created = result.filter((r) => r.created).length;
      report.created += created;
      report.updated += result.length - created;
      report.skipped += mailable.length - result.length;
      const touched = new Set(result.map((r) => r.subscriber_id));
      const consent = mailable.filter((r) => touched.has(ok.get(r.email)!));
      await em.query(
        `INSERT INTO consent_records (subscriber_id, newsletter_id, action, source_url, consent_text, consent_version)
         SELECT sid, $2, 'import', src, 'Imported as already consented on ' || to_char(cat AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'import'
         FROM unnest($1::bigint[], $3::text[], $4::timestamptz[]) AS t(sid, src, cat)`,
        [
          consent.map((r) => ok.get(r.email)!),
          newsletterId,
          consent.map((r) => r.source),
          consent.map((r) => r.consentedAt.toISOString()),
        ],
      );
    });
  }

  /** A streamed CSV of a newsletter's subscribers, paged by keyset. */
  async export(slug: string): Promise<Readable> {
    const newsletterId = await this.newsletterId(slug);
    const ds = this.ds;
    async function* pages(): AsyncGenerator<string[]> {
      let after = '0';
      for (;;) {
        const page = await rows<{
          id: string;
          email: string;
          name: string | null;
          topics: string[];
          timezone: string | null;
          status: string;
          confirmed_at: Date | null;
          source: string | null;
        }>(
          ds,
          `SELECT u.id, u.email, u.name, s.topics, u.timezone, s.status, s.confirmed_at, s.source
           FROM subscriptions s JOIN subscribers u ON u.id = s.subscriber_id
           WHERE s.newsletter_id = $1 AND u.id > $2 ORDER BY u.id LIMIT 1000`,
          [newsletterId, after],
        );
        if (page.length === 0) return;
        for (const r of page) {
          yield [
            cell(r.email),
            cell(r.name),
            cell(r.topics.join('|')),
            cell(r.timezone),
            r.status,
            r.confirmed_at ? r.confirmed_at.toISOString() : '',
            cell(r.source),
          ];
        }
        after = page[page.length - 1].id;
      }
    }
    const out = stringify({
      header: true,
      columns: ['email', 'name', 'topics', 'timezone', 'status', 'consented_at', 'source'],
    });
    Readable.from(pages()).pipe(out);
    return out;
  }

  static readonly columns = COLUMNS;
}
