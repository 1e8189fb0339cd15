/** How a `GroupWriter` groups its writes. */
export interface GroupWriterOptions {
  /** Statements under way at once; writes that arrive meanwhile wait and go together in the next. */
  maxTrips: number;
  /** Writes in one statement at most. */
  maxGroup: number;
}

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for independent writes of one kind (sign-ups): each caller waits for its own write,
 * and every write waiting when a statement starts goes in that one statement: one round trip, one
 * statement for the server to run and one commit for all of them instead of one each. A write that
 * finds no statement under way starts one in the same turn of the event loop (after the requests
 * read in that turn have had their chance to join), so a write alone waits for nothing.
 *
 * A group is one transaction: when its statement fails, nothing of it was written and each write
 * is tried again on its own, so one bad write fails alone and the others land as if alone.
 */
export class GroupWriter<T> {
  private waiting: Pending<T>[] = [];
  private trips = 0;
  private scheduled = false;

  constructor(
    private readonly writeMany: (items: T[]) => Promise<void>,
    private readonly writeOne: (item: T) => Promise<void>,
    private readonly opts: GroupWriterOptions,
  ) {}

  /** Settles once this write is committed (or has failed on its own). */
  write(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Statements under way now. */
  get underway(): number {
    return this.trips;
  }

  private schedule(): void {
    if (this.scheduled || this.trips >= this.opts.maxTrips || this.waiting.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.trips < this.opts.maxTrips && this.waiting.length > 0) {
        const group = this.waiting.splice(0, this.opts.maxGroup);
        this.trips += 1;
        void this.run(group).finally(() => {
          this.trips -= 1;
          this.schedule();
        });
      }
    });
  }

  private async run(group: Pending<T>[]): Promise<void> {
    if (group.length > 1) {
      try {
        await this.writeMany(group.map((p) => p.item));
        for (const p of group) p.resolve();
        return;
      } catch {
        // Nothing of the group was written: each write again on its own, with its own outcome.
      }
    }
    await Promise.all(
      group.map((p) =>
        this.writeOne(p.item).then(
          () => p.resolve(),
          (err: unknown) => p.reject(err),
        ),
      ),
    );
  }
}
