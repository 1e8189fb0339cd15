import { Places } from './places.js';

describe('sending places', () => {
  const settle = () => new Promise((r) => setImmediate(r));

  it('gives a free place at once, and a freed one to the waiting lane of the batch that started first', async () => {
    const places = new Places(2);
    await places.acquire(5);
    await places.acquire(7);
    const order: string[] = [];
    const wait = (rank: number, name: string) => places.acquire(rank).then(() => order.push(name));
    void wait(3, 'young-a');
    void wait(1, 'old-a');
    void wait(3, 'young-b');
    void wait(1, 'old-b');
    void wait(2, 'middle');
    expect(places.waiting).toBe(5);
    for (let i = 0; i < 5; i += 1) {
      places.release();
      await settle();
    }
    // Oldest batch first; within a batch, first come first served.
    expect(order).toEqual(['old-a', 'old-b', 'middle', 'young-a', 'young-b']);
    expect(places.waiting).toBe(0);
  });

  it('a place released with nobody waiting is free for the next lane of any batch', async () => {
    const places = new Places(1);
    await places.acquire(9);
    places.release();
    let got = false;
    void places.acquire(10).then(() => (got = true));
    await settle();
    expect(got).toBe(true);
  });
});
