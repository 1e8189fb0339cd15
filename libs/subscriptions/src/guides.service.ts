import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { CONTENT_DIR } from '#core/paths.js';
import { GuidesRepository } from './guides.repository.js';
import { LinkError } from './subscriptions.service.js';
import { verifyToken } from './tokens.js';

/**
 * Serves a lead magnet to the holder of a signed, expiring link for that guide's newsletter, and
 * records the reader's first download (the signup funnel's `guideDownloads`).
 */
@Injectable()
export class GuidesService {
  private readonly logger = new Logger('Guides');

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly guides: GuidesRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * `record: false` serves the file without counting a download: for a HEAD request or a link
   * prefetch, which a reader never asked for.
   */
  async download(
    slug: string,
    token: string,
    opts: { record?: boolean } = {},
  ): Promise<{ fileName: string; contentType: string; body: Buffer }> {
    const v = verifyToken(this.config.appSecret, 'guide', token);
    if (!v.ok) {
      throw new LinkError(
        v.reason === 'expired' ? 'expired' : 'unknown',
        v.reason === 'expired' ? 'This download link has expired.' : 'This download link is not valid.',
      );
    }
    const file =
      opts.record === false
        ? await this.guides.fileFor(this.ds, v.id, slug)
        : await this.fileRecordingDownload(v.id, slug);
    if (!file) throw new LinkError('unknown', 'This download link is not valid.');
    const fileName = basename(file.fileName);
    const body = await readFile(join(CONTENT_DIR, 'guides', fileName));
    return { fileName, contentType: file.contentType, body };
  }

  /**
   * The guide's file, marking the first download in the same statement. Recording must never cost
   * the reader the download: if that statement fails, the failure is logged and the file is looked
   * up alone.
   */
  private async fileRecordingDownload(
    subscriptionId: string,
    slug: string,
  ): Promise<{ fileName: string; contentType: string } | null> {
    try {
      return await this.guides.fileForDownload(this.ds, subscriptionId, slug);
    } catch (err) {
      this.logger.error(
        `Could not record the download of guide "${slug}" for subscription ${subscriptionId}: ${
          err instanceof Error ? err.message : String(err)
        }`,
      );
      return this.guides.fileFor(this.ds, subscriptionId, slug);
    }
  }
}
