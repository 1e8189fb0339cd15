import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import type { DkimKeySource, Sender } from '../bulk-message.js';
import { senderAddress, senderOf } from '../sender-address.js';
import {
  defaultSelector,
  DkimInputError,
  type DkimDnsRecord,
  dkimDnsRecord,
  dkimDomain,
  dkimSelector,
  generateDkimKeyPair,
  openPrivateKey,
  sealPrivateKey,
} from './dkim-key-material.js';
import { DkimKeysRepository } from './dkim-keys.repository.js';
import { addressDomain, type DkimSigningKey } from './dkim-signer.js';

/** How often a running process reads the keys again (a new or retired key signs within this time). */
export const DKIM_REFRESH_MS = 2_000;

/** One From domain as the console shows it: its keys, whether its mail is signed now, and who sends from it. */
export interface DkimDomainView {
  domain: string;
  /** The key mail is signed with now, or null: mail from this domain leaves unsigned. */
  signingSelector: string | null;
  /** An active key this process cannot open (another APP_SECRET): nothing is signed with it. */
  unreadable: boolean;
  keys: DkimKeyInfo[];
  /** Newsletters whose From is at this domain, by name. */
  newsletters: { slug: string; name: string; address: string }[];
  /** The configured default sender (MAIL_FROM) is at this domain. */
  defaultFrom: string | null;
}

export interface DkimKeyInfo {
  domain: string;
  selector: string;
  active: boolean;
  createdAt: Date;
  retiredAt: Date | null;
  record: DkimDnsRecord;
}

/**
 * DKIM keys per From domain: made and retired here (CLI, console), and held in memory for the
 * senders, read from the database at start and every `DKIM_REFRESH_MS`, and before each lifecycle mail (never per digest message).
 */
@Injectable()
export class DkimKeys implements DkimKeySource, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(DkimKeys.name);
  private byDomain = new Map<string, DkimSigningKey>();
  /** The active keys (domain and selector) last read, to skip decrypting them again when nothing changed. */
  private seen: string | null = null;
  private reading: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly repo: DkimKeysRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err: unknown) =>
        this.logger.warn(`DKIM keys not refreshed: ${err instanceof Error ? err.message : String(err)}`),
      );
    }, DKIM_REFRESH_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Reads the active keys again. A key that cannot be opened (another APP_SECRET) is logged and left out. */
  async refresh(): Promise<void> {
    this.reading ??= this.read().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  /**
   * The keys read again (one small query, shared by the mails that ask while it runs): lifecycle
   * mail asks before each message, so a key made or retired a moment ago applies to the very next
   * confirmation. Nothing is decrypted again unless the active keys changed.
   */
  async fresh(): Promise<void> {
    // A failed read leaves the keys as they were: the mail is not held up by it.
    await this.refresh().catch((err: unknown) =>
      this.logger.warn(`DKIM keys not refreshed: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  private async read(): Promise<void> {
    const rows = await this.repo.active(this.ds);
    // Unchanged since the last read (the usual case): nothing to decrypt.
    const seen = rows
      .map((r) => `${r.domain} ${r.selector}`)
      .sort()
      .join('\n');
    if (seen === this.seen) return;
    const next = new Map<string, DkimSigningKey>();
    for (const row of rows) {
      try {
        const privateKey = openPrivateKey(this.config.appSecret, row.domain, row.selector, row.private_key_enc);
        next.set(row.domain, { domain: row.domain, selector: row.selector, privateKey });
      } catch {
        this.logger.error(
          `DKIM key ${row.selector}._domainkey.${row.domain} cannot be decrypted with this APP_SECRET: mail from ${row.domain} goes unsigned`,
        );
      }
    }
    this.byDomain = next;
    this.seen = seen;
  }

  /** The key that signs mail from this sender now, or null (no active key for its domain). */
  keyFor(from: Sender | string): DkimSigningKey | null {
    return this.keyForDomain(addressDomain(senderAddress(from)));
  }

  keyForDomain(domain: string): DkimSigningKey | null {
    return this.byDomain.get(domain) ?? null;
  }

  /**
   * Makes an RSA-2048 key for `domain` under `selector` (default: this month's, `mrYYYYMM`) and
   * makes it the domain's active key; the previous active key is retired (kept, listed). Throws
   * `DkimInputError` for a bad domain or selector, or a selector the domain has used already.
   */
  async generate(domainInput: string, selectorInput?: string): Promise<DkimKeyInfo> {
    const domain = dkimDomain(domainInput);
    const selector = dkimSelector(selectorInput ?? defaultSelector());
    const { privateKeyPem, publicKey } = generateDkimKeyPair();
    const sealed = sealPrivateKey(this.config.appSecret, domain, selector, privateKeyPem);
    await this.ds.transaction(async (tx) => {
      // Serialises generations for one domain, so two at once cannot both find no active key.
      await tx.query(`SELECT pg_advisory_xact_lock(hashtext('dkim:' || $1))`, [domain]);
      if (await this.repo.exists(tx, domain, selector))
        throw new DkimInputError(
          `${domain} already has a key with selector ${selector}: choose another one (--selector)`,
        );
      await this.repo.retireActive(tx, domain);
      await this.repo.insert(tx, { domain, selector, publicKey, sealed });
    });
    return (await this.list()).find((k) => k.domain === domain && k.selector === selector)!;
  }

  /** Every key, active first within a domain, with the DNS record to publish. */
  async list(): Promise<DkimKeyInfo[]> {
    return (await this.repo.all(this.ds)).map((r) => ({
      domain: r.domain,
      selector: r.selector,
      active: r.retired_at === null,
      createdAt: r.created_at,
      retiredAt: r.retired_at,
      record: dkimDnsRecord(r.domain, r.selector, r.public_key),
    }));
  }

  /**
   * Every From domain that has keys or that mail leaves under (a newsletter's From, the default
   * MAIL_FROM), with what is signed now: read fresh from the database, not from the cache.
   */
  async overview(): Promise<DkimDomainView[]> {
    await this.refresh();
    const domains = new Map<string, DkimDomainView>();
    const of = (domain: string): DkimDomainView => {
      let v = domains.get(domain);
      if (!v) {
        v = { domain, signingSelector: null, unreadable: false, keys: [], newsletters: [], defaultFrom: null };
        domains.set(domain, v);
      }
      return v;
    };
    for (const k of await this.list()) of(k.domain).keys.push(k);
    for (const n of await this.repo.newsletterSenders(this.ds)) {
      const address = senderAddress(senderOf(n, this.config));
      of(addressDomain(address)).newsletters.push({ slug: n.slug, name: n.name, address });
    }
    if (this.config.mailFrom) {
      const address = senderAddress(this.config.mailFrom);
      of(addressDomain(address)).defaultFrom = address;
    }
    for (const v of domains.values()) {
      v.signingSelector = this.keyForDomain(v.domain)?.selector ?? null;
      v.unreadable = v.signingSelector === null && v.keys.some((k) => k.active);
    }
    return [...domains.values()].sort((a, b) => a.domain.localeCompare(b.domain));
  }

  /** Stops signing with a key (mail from its domain goes unsigned until a new key is generated). */
  async retire(domainInput: string, selectorInput: string): Promise<void> {
    const domain = dkimDomain(domainInput);
    const selector = dkimSelector(selectorInput);
    if (!(await this.repo.retire(this.ds, domain, selector)))
      throw new DkimInputError(`${domain} has no active key with selector ${selector}`);
  }

  /** Deletes a retired key, once its DNS record has been taken down. */
  async remove(domainInput: string, selectorInput: string): Promise<void> {
    const domain = dkimDomain(domainInput);
    const selector = dkimSelector(selectorInput);
    if (!(await this.repo.remove(this.ds, domain, selector)))
      throw new DkimInputError(`${domain} has no retired key with selector ${selector} (retire it first)`);
  }
}
