import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Queue } from 'bullmq';
import type { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '#config/config.js';
import { DIGEST_QUEUE, jobIds } from '#queue/jobs.js';
import { BatchQueue } from './batch-queue.service.js';
import { DigestWavesRepository, fallbackZone, type WaveState } from './digest-waves.repository.js';
import { type DigestRow, DigestsRepository, type FanOutWaves } from './digests.repository.js';
import { planWaves } from './local-waves.js';

export type WaveOutcome = 'queued' | 'waiting' | 'skipped' | 'cancelled';

/** A wave job that runs this early waits for its time rather than being queued again. */
const EARLY_WAIT_MS = 60_000;

/**
 * A local digest's waves (see local-waves.ts): planned once from the readers' zones, each sent when
 * its time comes (a delayed job), through the same ledger and batches as any digest; a wave more
 * than DIGEST_GRACE_MINUTES late (the workers were down) is skipped with the reason, never sent late.
 */
@Injectable()
export class DigestWaves {
  private readonly logger = new Logger(DigestWaves.name);

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @InjectQueue(DIGEST_QUEUE) private readonly queue: Queue,
    private readonly digests: DigestsRepository,
    private readonly repo: DigestWavesRepository,
    private readonly batches: BatchQueue,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** When the first reader's local time comes (null: no reader). */
  async firstWaveAt(db: EntityManager, d: DigestRow): Promise<Date | null> {
    const waves = planWaves(d.local_time!, await this.repo.zones(db, d));
    return waves[0]?.sendAt ?? null;
  }

  /** Plans the waves once (a retried plan keeps them); returns what the fan-out needs to give each row its wave. */
  async plan(d: DigestRow): Promise<FanOutWaves> {
    let list = await this.repo.list(this.ds, d.id);
    if (list.length === 0) {
      const planned = planWaves(d.local_time!, await this.repo.zones(this.ds, d));
      await this.ds.transaction((em) => this.repo.store(em, d.id, planned));
      list = await this.repo.list(this.ds, d.id);
      this.logger.log(`Digest ${d.id}: ${list.length} wave(s) at ${d.local_time} local time`);
    }
    const defaultZone = fallbackZone(d);
    return {
      zones: list.flatMap((w) => w.timezones.map((zone) => ({ zone, wave: w.wave }))),
      defaultZone,
      defaultWave: list.find((w) => w.timezones.includes(defaultZone))?.wave ?? 0,
    };
  }

  /**
   * Waves whose time has come go out (marked sending) or are skipped when more than the grace
   * late. Returns the waves going out (also those already going out).
   */
  async dueNow(digestId: string): Promise<number[]> {
    const going: number[] = [];
    for (const w of await this.repo.states(this.ds, digestId)) {
      if (w.status === 'sending') going.push(w.wave);
      if (w.status !== 'waiting' || w.sendAt.getTime() > Date.now()) continue;
      if (Date.now() - w.sendAt.getTime() > this.config.digest.graceMinutes * 60_000) await this.skipLate(digestId, w);
      else {
        await this.repo.start(this.ds, digestId, w.wave);
        going.push(w.wave);
      }
    }
    return going;
  }

  /**
   * Once the ledger is complete: rows of skipped waves are skipped too (a wave can be skipped
   * before its rows are written), and each wave still waiting gets a delayed job at its time (one
   * whose time came meanwhile is started by it at once).
   */
  async later(digestId: string): Promise<void> {
    await this.repo.skipRowsOfSkipped(this.ds, digestId);
    await this.endIfAllSkipped(digestId);
    for (const w of await this.repo.states(this.ds, digestId)) {
      if (w.status !== 'waiting') continue;
      await this.queue.add(
        'send-digest-wave',
        { digestId, wave: w.wave },
        { jobId: jobIds.digestWave(digestId, w.wave), delay: Math.max(0, w.sendAt.getTime() - Date.now()) },
      );
    }
  }

  /** After the fan-out and on a resume: `dueNow` and `later`. Returns the waves going out. */
  async begin(digestId: string): Promise<number[]> {
    const going = await this.dueNow(digestId);
    await this.later(digestId);
    return going;
  }

  /** `begin`, then the batches of every wave going out (a resume: `round` gives them new job ids). */
  async startDue(digestId: string, round?: string): Promise<void> {
    const going = await this.begin(digestId);
    if (going.length > 0) await this.batches.enqueue(digestId, { round, filter: { waves: going } });
    await this.digests.completeIfDone(this.ds, digestId);
  }

  private async skipLate(digestId: string, w: WaveState): Promise<void> {
    const reason = `past due: this wave (${w.timezone}) was due at ${w.sendAt.toISOString()}, more than ${this.config.digest.graceMinutes} minutes before it could be sent`;
    if (await this.ds.transaction((em) => this.repo.skip(em, digestId, w.wave, reason)))
      this.logger.warn(`Digest ${digestId} wave ${w.wave} skipped: ${reason}`);
  }

  /** A wave's time came (its delayed job): it goes out, or is skipped when it is more than the grace late. */
  async start(digestId: string, wave: number): Promise<WaveOutcome> {
    const d = await this.digests.find(this.ds, digestId);
    if (!d || d.status !== 'sending') return d?.status === 'cancelled' ? 'cancelled' : 'skipped';
    const w = (await this.repo.states(this.ds, digestId)).find((x) => x.wave === wave);
    if (!w || w.status === 'skipped') return 'skipped';
    if (w.status === 'waiting') {
      let early = w.sendAt.getTime() - Date.now();
      if (early > 0 && early <= EARLY_WAIT_MS) {
        await new Promise((r) => setTimeout(r, early));
        early = 0;
      }
      if (early > 0) {
        await this.queue.add(
          'send-digest-wave',
          { digestId, wave },
          { jobId: `${jobIds.digestWave(digestId, wave)}-at-${Date.now()}`, delay: early },
        );
        return 'waiting';
      }
      if (-early > this.config.digest.graceMinutes * 60_000) {
        await this.skipLate(digestId, w);
        await this.endIfAllSkipped(digestId);
        await this.digests.completeIfDone(this.ds, digestId);
        return 'skipped';
      }
      await this.repo.start(this.ds, digestId, wave);
    }
    await this.batches.enqueue(digestId, { filter: { waves: [wave] } });
    return 'queued';
  }

  /** Every wave skipped (the workers were down all day): the digest is skipped, not "sent". */
  private async endIfAllSkipped(digestId: string): Promise<void> {
    const list = await this.repo.states(this.ds, digestId);
    if (list.length === 0 || list.some((w) => w.status !== 'skipped')) return;
    await this.ds.transaction(async (em) => {
      const d = await this.digests.find(em, digestId, true);
      if (d?.status === 'sending')
        await this.digests.setStatus(
          em,
          digestId,
          'skipped',
          `past due: every wave's time passed more than ${this.config.digest.graceMinutes} minutes before it could be sent`,
        );
    });
  }
}
