/** How a newsletter's digest follows each reader's topics (see CONTRACT: Personal digests). */
export type PersonalizeMode = 'off' | 'order' | 'only';

/** Most distinct renders one issue may need; beyond, readers are grouped by their most common topics. */
export const MAX_VARIANTS = 64;

/** A topic as it is compared: case and surrounding space do not make another topic. */
export function topicKey(topic: string): string {
  return topic.trim().toLowerCase();
}

export interface VariantArticle {
  id: string;
  topics: string[];
}

/** Readers of the newsletter with the same issue topics (keys, sorted) among their own. */
export interface TopicSignature {
  topics: string[];
  readers: number;
}

export interface IssueVariant {
  /** 0 is the issue in its own order, for everyone else. */
  variant: number;
  /** The reader topics (keys, sorted) this variant was made for; empty for variant 0. */
  topics: string[];
  articleIds: string[];
  readers: number;
}

export interface VariantPlan {
  variants: IssueVariant[];
  /** Issue topics (keys) the readers' topic sets are cut down to before they are looked up in `variants`. */
  keptTopics: string[];
  /** Said in the digest's record when readers had to be grouped. */
  note: string | null;
}

/**
 * The articles of the variant for a reader with these topics (keys): `order` puts the articles on
 * any of them first (each group in issue order); `only` keeps just those, or the whole issue when
 * none match; `off` (or no topic) is the issue as it is.
 */
export function variantArticles(mode: PersonalizeMode, articles: VariantArticle[], topics: string[]): string[] {
  const all = articles.map((a) => a.id);
  if (mode === 'off' || topics.length === 0) return all;
  const wanted = new Set(topics);
  const matching = articles.filter((a) => a.topics.some((t) => wanted.has(topicKey(t)))).map((a) => a.id);
  if (matching.length === 0) return all;
  if (mode === 'only') return matching;
  const first = new Set(matching);
  return [...matching, ...all.filter((id) => !first.has(id))];
}

/**
 * The variants of one issue: one per distinct set of reader topics the issue's articles carry
 * (plus variant 0, the issue as it is), at most MAX_VARIANTS. When there would be more, the
 * least common topics are left out of every reader's set until they fit, and the note says so.
 */
export function planVariants(
  mode: PersonalizeMode,
  articles: VariantArticle[],
  signatures: TopicSignature[],
): VariantPlan {
  const readersOf = (pred: (s: TopicSignature) => boolean) =>
    signatures.filter(pred).reduce((n, s) => n + s.readers, 0);
  const base: IssueVariant = {
    variant: 0,
    topics: [],
    articleIds: articles.map((a) => a.id),
    readers: readersOf(() => true),
  };
  if (mode === 'off') return { variants: [base], keptTopics: [], note: null };

  // Topics by how many readers have them, most first (ties by name, so a plan is repeatable).
  const weight = new Map<string, number>();
  for (const s of signatures) for (const t of s.topics) weight.set(t, (weight.get(t) ?? 0) + s.readers);
  let kept = [...weight.keys()].sort((a, b) => weight.get(b)! - weight.get(a)! || a.localeCompare(b));
  const all = kept.length;
  for (;;) {
    const keep = new Set(kept);
    const groups = new Map<string, { topics: string[]; readers: number }>();
    for (const s of signatures) {
      const topics = s.topics.filter((t) => keep.has(t));
      if (topics.length === 0) continue;
      const key = topics.join('\u0000');
      const g = groups.get(key) ?? { topics, readers: 0 };
      g.readers += s.readers;
      groups.set(key, g);
    }
    if (groups.size + 1 <= MAX_VARIANTS || kept.length === 0) {
      const variants = [base];
      const sorted = [...groups.values()].sort(
        (a, b) => b.readers - a.readers || a.topics.join().localeCompare(b.topics.join()),
      );
      for (const g of sorted) {
        variants.push({
          variant: variants.length,
          topics: g.topics,
          articleIds: variantArticles(mode, articles, g.topics),
          readers: g.readers,
        });
      }
      base.readers -= variants.slice(1).reduce((n, v) => n + v.readers, 0);
      const note =
        kept.length < all
          ? `Readers grouped by their ${kept.length} most common of ${all} topics: their topic sets would have needed more than ${MAX_VARIANTS} variants.`
          : null;
      return { variants, keptTopics: [...kept].sort(), note };
    }
    kept = kept.slice(0, -1);
  }
}
