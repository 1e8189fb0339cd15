import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { NewslettersRepository } from './newsletters.repository.js';

export interface CatalogEntry {
  id: number;
  slug: string;
  name: string;
  isDefault: boolean;
}

/** How long a process trusts its copy of the newsletters (another api process may change one). */
export const CATALOG_TTL_MS = 5_000;

/**
 * The newsletters' slugs, ids and names for the subscribe path, read from PostgreSQL at most
 * every few seconds instead of once per request. A slug it does not know always sends it back to
 * the database (a newsletter created a moment ago is found at once); changes made through this
 * process (NewslettersService) clear it; changes made elsewhere show after CATALOG_TTL_MS.
 */
@Injectable()
export class NewsletterCatalog {
  private entries: Map<string, CatalogEntry> | null = null;
  private loadedAt = 0;
  private loading: Promise<Map<string, CatalogEntry>> | null = null;
  /** Bumped by forget(): a read that started before it is not kept. */
  private generation = 0;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly newsletters: NewslettersRepository,
  ) {}

  /** The newsletters of these slugs (in the order asked, without repeats) and the slugs that do not exist. */
  async bySlugs(slugs: string[]): Promise<{ found: CatalogEntry[]; missing: string[] }> {
    const unique = [...new Set(slugs)];
    let entries = await this.current();
    if (unique.some((s) => !entries.has(s))) entries = await this.current(true);
    const found: CatalogEntry[] = [];
    const missing: string[] = [];
    for (const s of unique) {
      const e = entries.get(s);
      if (e) found.push(e);
      else missing.push(s);
    }
    return { found, missing };
  }

  async defaultNewsletter(): Promise<CatalogEntry | undefined> {
    const find = (m: Map<string, CatalogEntry>) => [...m.values()].find((e) => e.isDefault);
    return find(await this.current()) ?? find(await this.current(true));
  }

  /** Forgets what it read: the next lookup reads the newsletters again. */
  forget(): void {
    this.entries = null;
    this.loading = null;
    this.generation += 1;
  }

  private async current(fresh = false): Promise<Map<string, CatalogEntry>> {
    if (!fresh && this.entries && Date.now() - this.loadedAt < CATALOG_TTL_MS) return this.entries;
    // Concurrent requests share one read.
    if (!this.loading) {
      const loading = this.load().finally(() => {
        if (this.loading === loading) this.loading = null;
      });
      this.loading = loading;
    }
    return this.loading;
  }

  private async load(): Promise<Map<string, CatalogEntry>> {
    const startedAt = Date.now();
    const generation = this.generation;
    const rows = await this.newsletters.catalog(this.ds);
    const entries = new Map(
      rows.map((r) => [r.slug, { id: r.id, slug: r.slug, name: r.name, isDefault: r.is_default }]),
    );
    if (generation === this.generation) {
      this.entries = entries;
      this.loadedAt = startedAt;
    }
    return entries;
  }
}
