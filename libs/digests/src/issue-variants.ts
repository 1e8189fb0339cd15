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

/**
 * Readers of the newsletter with the same issue topics (keys, sorted) among their own and the same
 * articles of this issue already sent to them by other digests (`seen`, ids sorted as numbers).
 */
export interface TopicSignature {
  topics: string[];
  seen?: string[];
  readers: number;
}

export interface IssueVariant {
  /** 0 is the issue in its own order, for everyone else. */
  variant: number;
  /** The reader topics (keys, sorted) this variant was made for; empty for variant 0. */
  topics: string[];
  /** Articles of the issue its readers were already sent (left out of `articleIds`). */
  seen: string[];
  articleIds: string[];
  readers: number;
}

export interface VariantPlan {
  variants: IssueVariant[];
  /** Issue topics (keys) the readers' topic sets are cut down to before they are looked up in `variants`. */
  keptTopics: string[];
  /** Said in the digest's record when readers had to be grouped. */
  note: string | null;
  /** Readers who were already sent every article of the issue: they get no mail. */
  hadAll?: number;
}

/**
 * The articles of the variant for a reader with these topics (keys): `order` puts the articles on
 * any of them first (each group in issue order); `only` keeps just those, or the whole issue when
 * none match; `off` (or no topic) is the issue as it is. Articles in `seen` (already sent to the
 * reader by another digest) are left out before any of that.
 */
export function variantArticles(
  mode: PersonalizeMode,
  issue: VariantArticle[],
  topics: string[],
  seen: string[] = [],
): string[] {
  const had = new Set(seen);
  const articles = issue.filter((a) => !had.has(a.id));
  const all = articles.map((a) => a.id);
  if (mode === 'off' || topics.length === 0) return all;
  const wanted = new Set(topics);
  const matching = articles.filter((a) => a.topics.some((t) => wanted.has(topicKey(t)))).map((a) => a.id);
  if (matching.length === 0) return all;
  if (mode === 'only') return matching;
  const first = new Set(matching);
  return [...matching, ...all.filter((id) => !first.has(id))];
}

const byNumber = (a: string, b: string) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);

/**
 * The variants of one issue: one per distinct pair of reader topics the issue's articles carry and
 * articles of it the readers were already sent (plus variant 0, the issue as it is), at most
 * MAX_VARIANTS. When there would be more, the least common topics are left out of every reader's
 * set until they fit, and the note says so. Seen sets are never dropped (a reader must not get an
 * article twice): when they alone pass the bound, the least common are merged into one variant that
 * leaves out all their articles. Readers who were sent every article get no variant (`hadAll`).
 */
export function planVariants(
  mode: PersonalizeMode,
  articles: VariantArticle[],
  signatures: TopicSignature[],
): VariantPlan {
  const issueIds = new Set(articles.map((a) => a.id));
  const hadAllOf = (s: TopicSignature) => (s.seen ?? []).filter((id) => issueIds.has(id)).length >= issueIds.size;
  const hadAll = signatures.filter(hadAllOf).reduce((n, s) => n + s.readers, 0);
  const readers = signatures
    .filter((s) => !hadAllOf(s))
    .map((s) => ({
      topics: mode === 'off' ? [] : s.topics,
      seen: [...new Set(s.seen ?? [])].filter((id) => issueIds.has(id)).sort(byNumber),
      readers: s.readers,
    }));
  const total = readers.reduce((n, s) => n + s.readers, 0);
  const variant = (topics: string[], seen: string[], n: number): Omit<IssueVariant, 'variant'> => ({
    topics,
    seen,
    articleIds: variantArticles(mode, articles, topics, seen),
    readers: n,
  });

  // Topics by how many readers have them, most first (ties by name, so a plan is repeatable).
  const weight = new Map<string, number>();
  for (const s of readers) for (const t of s.topics) weight.set(t, (weight.get(t) ?? 0) + s.readers);
  let kept = [...weight.keys()].sort((a, b) => weight.get(b)! - weight.get(a)! || a.localeCompare(b));
  const all = kept.length;
  for (;;) {
    const keep = new Set(kept);
    const groups = new Map<string, { topics: string[]; seen: string[]; readers: number }>();
    for (const s of readers) {
      const topics = s.topics.filter((t) => keep.has(t));
      if (topics.length === 0 && s.seen.length === 0) continue;
      const key = `${topics.join('\u0000')}\u0001${s.seen.join(',')}`;
      const g = groups.get(key) ?? { topics, seen: s.seen, readers: 0 };
      g.readers += s.readers;
      groups.set(key, g);
    }
    if (groups.size + 1 > MAX_VARIANTS && kept.length > 0) {
      kept = kept.slice(0, -1);
      continue;
    }
    let sorted = [...groups.values()].sort(
      (a, b) =>
        b.readers - a.readers ||
        a.topics.join().localeCompare(b.topics.join()) ||
        a.seen.join().localeCompare(b.seen.join()),
    );
    let merged: { seen: string[]; readers: number } | null = null;
    if (sorted.length + 1 > MAX_VARIANTS) {
      // Only seen sets are left to tell readers apart: the least common share one variant.
      const rest = sorted.slice(MAX_VARIANTS - 2);
      sorted = sorted.slice(0, MAX_VARIANTS - 2);
      merged = {
        seen: [...new Set(rest.flatMap((g) => g.seen))].sort(byNumber),
        readers: rest.reduce((n, g) => n + g.readers, 0),
      };
    }
    const variants: IssueVariant[] = [{ variant: 0, ...variant([], [], 0) }];
    for (const g of sorted) variants.push({ variant: variants.length, ...variant(g.topics, g.seen, g.readers) });
    if (merged && merged.seen.length < issueIds.size)
      variants.push({ variant: variants.length, ...variant([], merged.seen, merged.readers) });
    variants[0].readers = total - variants.slice(1).reduce((n, v) => n + v.readers, 0);
    const notes: string[] = [];
    if (kept.length < all)
      notes.push(
        `Readers grouped by their ${kept.length} most common of ${all} topics: their topic sets would have needed more than ${MAX_VARIANTS} variants.`,
      );
    if (merged)
      notes.push(
        `${merged.readers} readers with the least common sets of articles already sent share one variant that leaves out all of those articles.`,
      );
    return { variants, keptTopics: [...kept].sort(), note: notes.length ? notes.join(' ') : null, hadAll };
  }
}
