import { GroupWriter } from './group-writer.js';

/** A write target that records every statement and lets the test finish each one. */
class Target {
  readonly statements: { kind: 'many' | 'one'; items: number[]; done: () => void }[] = [];
  /** Items the statements fail for (a "many" fails when it holds one, as a transaction would). */
  readonly bad = new Set<number>();
  autoFinish = false;

  private statement(kind: 'many' | 'one', items: number[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = () =>
        items.some((i) => this.bad.has(i)) ? reject(new Error(`bad item in ${items.join(',')}`)) : resolve();
      this.statements.push({ kind, items, done });
      if (this.autoFinish) setImmediate(done);
    });
  }

  many = (items: number[]) => this.statement('many', items);
  one = (item: number) => this.statement('one', [item]);
}

const turn = () => new Promise((resolve) => setImmediate(resolve));
/** A few turns: a finished statement's bookkeeping, then the next statement's start. */
const settle = async () => {
  for (let i = 0; i < 3; i += 1) await turn();
};

describe('GroupWriter', () => {
  it('sends a write alone at once, and the writes that arrive meanwhile together in the next statement', async () => {
    const t = new Target();
    const w = new GroupWriter(t.many, t.one, { maxTrips: 1, maxGroup: 100 });
    const first = w.write(1);
    await turn();
    expect(t.statements.map((s) => [s.kind, s.items])).toEqual([['one', [1]]]);
    const rest = [2, 3, 4].map((i) => w.write(i));
    await turn();
    // One statement under way (maxTrips 1): the others wait for it.
    expect(t.statements).toHaveLength(1);
    t.statements[0].done();
    await first;
    await settle();
    expect(t.statements.map((s) => [s.kind, s.items])).toEqual([
      ['one', [1]],
      ['many', [2, 3, 4]],
    ]);
    t.statements[1].done();
    await Promise.all(rest);
  });

  it('writes that arrive in one turn of the event loop share a statement', async () => {
    const t = new Target();
    t.autoFinish = true;
    const w = new GroupWriter(t.many, t.one, { maxTrips: 2, maxGroup: 100 });
    await Promise.all([1, 2, 3, 4, 5].map((i) => w.write(i)));
    expect(t.statements.map((s) => [s.kind, s.items])).toEqual([['many', [1, 2, 3, 4, 5]]]);
  });

  it('keeps at most maxTrips statements under way and maxGroup writes in each', async () => {
    const t = new Target();
    const w = new GroupWriter(t.many, t.one, { maxTrips: 2, maxGroup: 3 });
    const all = Array.from({ length: 10 }, (_, i) => w.write(i));
    await turn();
    expect(t.statements.map((s) => s.items)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    expect(w.underway).toBe(2);
    t.statements[0].done();
    await settle();
    expect(t.statements.map((s) => s.items)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
    ]);
    expect(w.underway).toBe(2);
    t.autoFinish = true;
    for (const s of t.statements.slice(1)) s.done();
    await Promise.all(all);
    await settle();
    expect(
      t.statements
        .map((s) => s.items)
        .flat()
        .sort((a, b) => a - b),
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(w.underway).toBe(0);
  });

  it('when a group fails, each write is tried again on its own: the bad one fails alone', async () => {
    const t = new Target();
    t.autoFinish = true;
    t.bad.add(3);
    const w = new GroupWriter(t.many, t.one, { maxTrips: 1, maxGroup: 100 });
    const outcomes = await Promise.allSettled([1, 2, 3, 4].map((i) => w.write(i)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[2] as PromiseRejectedResult).reason).toEqual(new Error('bad item in 3'));
    expect(t.statements.map((s) => [s.kind, s.items])).toEqual([
      ['many', [1, 2, 3, 4]],
      ['one', [1]],
      ['one', [2]],
      ['one', [3]],
      ['one', [4]],
    ]);
  });

  it('a write alone that fails rejects with its own error, and the writer goes on', async () => {
    const t = new Target();
    t.autoFinish = true;
    t.bad.add(1);
    const w = new GroupWriter(t.many, t.one, { maxTrips: 1, maxGroup: 100 });
    await expect(w.write(1)).rejects.toThrow('bad item in 1');
    await expect(w.write(2)).resolves.toBeUndefined();
    await settle();
    expect(w.underway).toBe(0);
  });
});
