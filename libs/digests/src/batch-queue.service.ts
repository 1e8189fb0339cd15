import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Queue } from 'bullmq';
import type { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { DIGEST_QUEUE, type DigestJob, jobIds } from '#queue/jobs.js';
import { type BatchFilter, DigestsRepository } from './digests.repository.js';

/** Batch jobs queued with one addBulk. */
const ENQUEUE_CHUNK = 500;

type BatchJob = Extract<DigestJob, { name: 'send-digest-batch' }>;

/** Queues a digest's batch jobs: one per keyset range of its delivery ledger. */
@Injectable()
export class BatchQueue {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @InjectQueue(DIGEST_QUEUE) private readonly queue: Queue,
    private readonly repo: DigestsRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * Keyset pages over the ledger (after `from`, up to `upTo` when given, only the rows `filter`
   * keeps), enqueued with addBulk; memory holds one chunk of job ranges at a time. A `round` (a
   * resume) gives the jobs new ids; without, a range's job id is fixed, so queuing it twice is
   * harmless (and ranges of disjoint filters never share a first row).
   */
  async enqueue(
    digestId: string,
    at: { round?: string; from?: string; upTo?: string | null; filter?: BatchFilter } = {},
  ): Promise<number> {
    const filter = at.filter ?? {};
    let after = at.from ?? '0';
    let total = 0;
    let chunk: { name: BatchJob['name']; data: BatchJob['data']; opts: { jobId: string } }[] = [];
    for (;;) {
      const range = await this.repo.nextRange(
        this.ds,
        digestId,
        after,
        this.config.digest.batchSize,
        at.upTo ?? null,
        filter,
      );
      if (range) {
        const id = jobIds.digestBatch(digestId, range.from);
        chunk.push({
          name: 'send-digest-batch',
          data: {
            digestId,
            fromSubscriberId: range.from,
            toSubscriberId: range.to,
            ...(filter.waves ? { waves: filter.waves } : {}),
            ...(filter.variants ? { variants: filter.variants } : {}),
          },
          opts: { jobId: at.round ? `${id}-r${at.round}` : id },
        });
        after = range.to;
      }
      if (chunk.length >= ENQUEUE_CHUNK || (!range && chunk.length > 0)) {
        await this.queue.addBulk(chunk);
        total += chunk.length;
        chunk = [];
      }
      if (!range) return total;
    }
  }
}
