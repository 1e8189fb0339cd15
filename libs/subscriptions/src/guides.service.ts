import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { CONTENT_DIR } from '#core/paths.js';
import { LinkError } from './subscriptions.service.js';
import { verifyToken } from './tokens.js';

/** Serves a lead magnet to the holder of a signed, expiring link for that guide's newsletter. */
@Injectable()
export class GuidesService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async download(slug: string, token: string): Promise<{ fileName: string; contentType: string; body: Buffer }> {
    const v = verifyToken(this.config.appSecret, 'guide', token);
    if (!v.ok) {
      throw new LinkError(
        v.reason === 'expired' ? 'expired' : 'unknown',
        v.reason === 'expired' ? 'This download link has expired.' : 'This download link is not valid.',
      );
    }
    const rows: { file_name: string; content_type: string }[] = await this.ds.query(
      `SELECT g.file_name, g.content_type FROM subscriptions s
       JOIN newsletters n ON n.id = s.newsletter_id JOIN guides g ON g.id = n.guide_id
       WHERE s.id = $1 AND g.slug = $2`,
      [v.id, slug],
    );
    if (rows.length === 0) throw new LinkError('unknown', 'This download link is not valid.');
    const fileName = basename(rows[0].file_name);
    const body = await readFile(join(CONTENT_DIR, 'guides', fileName));
    return { fileName, contentType: rows[0].content_type, body };
  }
}
