import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';

/** Admin API keys, stored as hashes. */
@Injectable()
export class ApiKeysRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** Creates the key of this name, or replaces its hash. */
  async upsert(name: string, keyHash: Buffer): Promise<void> {
    await this.ds.query(
      `INSERT INTO api_keys (name, key_hash) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET key_hash = EXCLUDED.key_hash`,
      [name, keyHash],
    );
  }

  /** Whether a key with this hash exists; when it does, stamps its last use. */
  async touch(keyHash: Buffer): Promise<boolean> {
    const found = await rows(this.ds, `UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1 RETURNING id`, [
      keyHash,
    ]);
    return found.length > 0;
  }
}
