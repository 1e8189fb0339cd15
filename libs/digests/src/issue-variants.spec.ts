import { MAX_VARIANTS, planVariants, variantArticles } from './issue-variants.js';

const ARTICLES = [
  { id: '1', topics: [] },
  { id: '2', topics: ['Neck Pain'] },
  { id: '3', topics: ['Sciatica'] },
  { id: '4', topics: ['neck pain', 'Sciatica'] },
];

describe('issue variants', () => {
  it("orders, filters or keeps the issue for a reader's topics", () => {
    expect(variantArticles('order', ARTICLES, ['neck pain'])).toEqual(['2', '4', '1', '3']);
    expect(variantArticles('only', ARTICLES, ['neck pain'])).toEqual(['2', '4']);
    expect(variantArticles('only', ARTICLES, ['knee'])).toEqual(['1', '2', '3', '4']);
    expect(variantArticles('off', ARTICLES, ['neck pain'])).toEqual(['1', '2', '3', '4']);
    expect(variantArticles('order', ARTICLES, [])).toEqual(['1', '2', '3', '4']);
  });

  it('one variant per distinct topic set, variant 0 for the rest, readers counted', () => {
    const plan = planVariants('order', ARTICLES, [
      { topics: ['neck pain'], readers: 5 },
      { topics: ['sciatica'], readers: 3 },
      { topics: [], readers: 7 },
    ]);
    expect(plan.variants.map((v) => [v.variant, v.topics, v.readers])).toEqual([
      [0, [], 7],
      [1, ['neck pain'], 5],
      [2, ['sciatica'], 3],
    ]);
    expect(plan.keptTopics).toEqual(['neck pain', 'sciatica']);
    expect(plan.note).toBeNull();
    expect(planVariants('off', ARTICLES, [{ topics: ['neck pain'], readers: 5 }]).variants).toHaveLength(1);
  });

  it('past 64 variants, groups readers by their most common topics and says so', () => {
    // 10 topics, every pair of them a reader set: 45 pairs + 10 singles = 55 sets (fits); add triples to pass 64.
    const topics = Array.from({ length: 10 }, (_, i) => `t${i}`);
    const articles = topics.map((t, i) => ({ id: String(i + 1), topics: [t] }));
    const signatures = [];
    for (let a = 0; a < 10; a += 1) {
      signatures.push({ topics: [topics[a]], readers: 100 - a });
      for (let b = a + 1; b < 10; b += 1) {
        signatures.push({ topics: [topics[a], topics[b]], readers: 2 });
        for (let c = b + 1; c < 10; c += 1) signatures.push({ topics: [topics[a], topics[b], topics[c]], readers: 1 });
      }
    }
    const plan = planVariants('order', articles, signatures);
    expect(plan.variants.length).toBeLessThanOrEqual(MAX_VARIANTS);
    expect(plan.keptTopics.length).toBeLessThan(10);
    // The least common topics went first.
    expect(plan.keptTopics).toEqual(topics.slice(0, plan.keptTopics.length));
    expect(plan.note).toContain(`their ${plan.keptTopics.length} most common of 10 topics`);
    // Every reader is in exactly one variant.
    const readers = signatures.reduce((n, s) => n + s.readers, 0);
    expect(plan.variants.reduce((n, v) => n + v.readers, 0)).toBe(readers);
  });

  it('leaves out what a reader was already sent, in every mode, and skips readers who had it all', () => {
    expect(variantArticles('order', ARTICLES, ['neck pain'], ['4'])).toEqual(['2', '1', '3']);
    expect(variantArticles('only', ARTICLES, ['neck pain'], ['2', '4'])).toEqual(['1', '3']);
    expect(variantArticles('off', ARTICLES, [], ['1'])).toEqual(['2', '3', '4']);
    const plan = planVariants('order', ARTICLES, [
      { topics: ['neck pain'], seen: [], readers: 5 },
      { topics: ['neck pain'], seen: ['4'], readers: 2 },
      { topics: [], seen: ['10', '4'], readers: 3 },
      { topics: [], seen: ['1', '2', '3', '4'], readers: 4 },
      { topics: [], readers: 1 },
    ]);
    expect(plan.variants.map((v) => [v.topics, v.seen, v.articleIds, v.readers])).toEqual([
      [[], [], ['1', '2', '3', '4'], 1],
      [['neck pain'], [], ['2', '4', '1', '3'], 5],
      // "10" is not an article of this issue: only the issue's own count.
      [[], ['4'], ['1', '2', '3'], 3],
      [['neck pain'], ['4'], ['2', '1', '3'], 2],
    ]);
    expect(plan.hadAll).toBe(4);
    const off = planVariants('off', ARTICLES, [
      { topics: ['neck pain'], seen: ['2'], readers: 5 },
      { topics: ['sciatica'], seen: [], readers: 1 },
    ]);
    expect(off.variants.map((v) => [v.topics, v.seen, v.readers])).toEqual([
      [[], [], 1],
      [[], ['2'], 5],
    ]);
  });

  it('never drops a seen set: past 64 of them, the least common share one variant leaving out all their articles', () => {
    const articles = Array.from({ length: 80 }, (_, i) => ({ id: String(i + 1), topics: ['t'] }));
    const signatures = articles.map((a, i) => ({ topics: ['t'], seen: [a.id], readers: 100 - i }));
    const plan = planVariants('order', articles, signatures);
    expect(plan.variants).toHaveLength(MAX_VARIANTS);
    expect(plan.keptTopics).toEqual([]);
    const last = plan.variants[MAX_VARIANTS - 1];
    expect(last.seen).toEqual(articles.slice(MAX_VARIANTS - 2).map((a) => a.id));
    expect(last.articleIds).toHaveLength(MAX_VARIANTS - 2);
    expect(plan.note).toContain('share one variant');
    expect(plan.variants.reduce((n, v) => n + v.readers, 0)).toBe(signatures.reduce((n, s) => n + s.readers, 0));
  });
});
