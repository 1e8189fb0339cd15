import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { CONTENT_DIR } from '#core/paths.js';
import { GuidesRepository } from './guides.repository.js';
import { LinkError } from './subscriptions.service.js';
import { verifyToken } from './tokens.js';

/** Serves a lead magnet to the holder of a signed, expiring link for that guide's newsletter. */
@Injectable()
export class GuidesService {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly guides: GuidesRepository,
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
    const file = await this.guides.fileFor(this.ds, v.id, slug);
    if (!file) throw new LinkError('unknown', 'This download link is not valid.');
    const fileName = basename(file.fileName);
    const body = await readFile(join(CONTENT_DIR, 'guides', fileName));
    return { fileName, contentType: file.contentType, body };
  }
}
