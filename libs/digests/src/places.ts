/**
 * Sending places per SMTP connection: a place claims its next messages in one ledger round trip
 * and sends them one after the other; with two places a connection stays busy through a round trip.
 */
export const PLACES_PER_CONNECTION = 2;

/**
 * Sending places, the worker's concurrency slots: `PLACES_PER_CONNECTION` per SMTP connection,
 * shared by the lanes of all the worker's batches. A lane holds one while it claims, takes a send
 * permit and sends, so a permit is used within about one message time instead of waiting deep in
 * the SMTP pool's queue (where late permits would go out together in a burst).
 *
 * A free place goes to the waiting lane of the batch that started first: one batch drains at a
 * time while the others (`DIGEST_CONCURRENCY` in all) stand ready to fill its places, so no place
 * idles while a batch starts (its range read, suppressions checked, first rows claimed), and the
 * batches do not run dry together.
 */
export class Places {
  /** Waiting lanes, oldest batch first (FIFO within a batch). */
  private waiters: { rank: number; go: () => void }[] = [];
  constructor(private free: number) {}

  /** A place for a lane of the batch ranked `rank` (lower goes first). */
  async acquire(rank: number): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((go) => {
      let i = this.waiters.length;
      while (i > 0 && this.waiters[i - 1].rank > rank) i -= 1;
      this.waiters.splice(i, 0, { rank, go });
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next.go();
    else this.free += 1;
  }

  /** Lanes waiting for a place. */
  get waiting(): number {
    return this.waiters.length;
  }
}
