import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { stringify } from 'csv-stringify';
import { Readable } from 'node:stream';
import type { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { checkImportRow, IMPORT_COLUMNS, type ImportColumn, type ImportRow, type InvalidLine } from './csv-fields.js';
import { CsvFileError, discardRest, readCsv } from './csv-reader.js';
import { type ChunkParams, ImportExportRepository } from './import-export.repository.js';
import { emailHash } from './tokens.js';

export interface ImportReport {
  created: number;
  updated: number;
  skipped: number;
  invalid: number;
  /** Line numbers (1 = the header) of the first invalid rows, with why. */
  invalidLines: InvalidLine[];
  /** How the file was read, when worth saying (an encoding guessed). */
  notes: string[];
}

const CHUNK = 1000;
const MAX_REPORTED = 20;
/** Chunks written or waiting their turn at once: parsing runs ahead of the database by this much. */
const IN_FLIGHT = 3;

const COLUMNS: readonly string[] = IMPORT_COLUMNS;

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
    private readonly repo: ImportExportRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private async newsletterId(slug: string): Promise<number> {
    const id = await this.repo.newsletterId(this.ds, slug);
    if (id === null) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
    return id;
  }

  /**
   * All or nothing: the whole file is written in one transaction (set-based, in chunks of 1,000
   * rows, so memory stays flat on both sides), and a file that cannot be parsed writes nothing.
   */
  async import(slug: string, input: Readable): Promise<ImportReport> {
    try {
      const newsletterId = await this.newsletterId(slug);
      return await this.ds.transaction((em) => this.importAll(em, newsletterId, input));
    } catch (err) {
      discardRest(input);
      throw err;
    }
  }

  private async importAll(em: EntityManager, newsletterId: number, input: Readable): Promise<ImportReport> {
    const report: ImportReport = { created: 0, updated: 0, skipped: 0, invalid: 0, invalidLines: [], notes: [] };
    const records = readCsv(input, { mustName: 'email', header: COLUMNS.join(','), notes: report.notes });
    const columns: { name: ImportColumn; at: number }[] = [];
    let width = 0;
    let chunk: ImportRow[] = [];
    // Chunks are written while the next ones are parsed. The transaction has one connection, so each
    // chunk's statement is built at once and sent the moment the one before it is done.
    const writing: Promise<void>[] = [];
    const write = async (batch: ImportRow[]) => {
      if (writing.length >= IN_FLIGHT) await writing.shift();
      const params = this.chunkParams(newsletterId, batch, report);
      const next = (writing.at(-1) ?? Promise.resolve()).then(() => this.writeChunk(em, params, report));
      next.catch(() => undefined); // awaited (and so rethrown) in order, before later chunks or at the end
      writing.push(next);
    };
    try {
      for await (const { line, fields } of records) {
        if (line === 1) {
          const header = fields.map((h) => h.trim().toLowerCase());
          for (const name of IMPORT_COLUMNS) {
            const at = header.indexOf(name);
            if (at !== -1 && header.indexOf(name, at + 1) !== -1)
              throw new CsvFileError(1, `the header names the column "${name}" twice`);
            if (at !== -1) columns.push({ name, at });
          }
          // Without it every row would be refused: say so once.
          if (!columns.some((c) => c.name === 'consented_at'))
            throw new CsvFileError(1, 'the header must name the column consented_at (when each reader consented)');
          width = header.length;
          continue;
        }
        const checked = this.check(fields, columns, width, line);
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
    } finally {
      // The transaction's connection must be idle before a rollback runs on it.
      await Promise.allSettled(writing);
    }
    // The first failure in file order: the chunks after it only saw the aborted transaction.
    for (const w of writing) await w;
    return report;
  }

  private check(fields: string[], columns: { name: ImportColumn; at: number }[], width: number, line: number) {
    // A row longer than the header usually means a comma inside an unquoted field: its columns shifted.
    if (fields.length > width && fields.slice(width).some((f) => f !== '')) {
      return {
        line,
        reason: `the row has ${fields.length} fields and the header ${width}: quote fields that contain the delimiter`,
      };
    }
    const cells: Record<ImportColumn, string> = {
      email: '',
      name: '',
      topics: '',
      timezone: '',
      consented_at: '',
      source: '',
    };
    for (const { name, at } of columns) cells[name] = fields[at] ?? '';
    return checkImportRow(cells, line);
  }

  /** A chunk's rows as the parameters of IMPORT_CHUNK_SQL; the last line for an address wins within a chunk. */
  private chunkParams(newsletterId: number, all: ImportRow[], report: ImportReport): ChunkParams {
    const byEmail = new Map(all.map((r) => [r.email, r]));
    report.skipped += all.length - byEmail.size;
    const list = [...byEmail.values()];
    return [
      list.map((r) => r.email),
      list.map((r) => r.name),
      list.map((r) => r.timezone),
      list.map((r) => r.topics.join('|')),
      list.map((r) => r.consentedAt.toISOString()),
      list.map((r) => r.source),
      list.map((r) => emailHash(this.config.appSecret, r.email)),
      newsletterId,
    ];
  }

  /**
   * One chunk in one statement: suppressed addresses are left out, subscribers upserted, and those
   * whose status is ok get an active subscription (unless they unsubscribed) and a consent record.
   */
  private async writeChunk(em: EntityManager, params: ChunkParams, report: ImportReport): Promise<void> {
    const counts = await this.repo.writeChunk(em, params);
    report.skipped += params[0].length - counts.allowed; // suppressed
    report.skipped += counts.allowed - counts.ok; // bounced, complained or suppressed subscribers
    report.skipped += counts.ok - counts.upserted; // unsubscribed from this newsletter
    report.created += counts.created;
    report.updated += counts.upserted - counts.created;
  }

  /** A streamed CSV of a newsletter's subscribers, paged by keyset. */
  async export(slug: string): Promise<Readable> {
    const newsletterId = await this.newsletterId(slug);
    const { ds, repo } = this;
    async function* pages(): AsyncGenerator<string[]> {
      let after = '0';
      for (;;) {
        const page = await repo.exportPage(ds, newsletterId, after);
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
