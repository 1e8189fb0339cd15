import type { DataSource } from 'typeorm';

const BASE = {
  'spine-health': 'https://www.spine-health.example',
  'arthritis-health': 'https://www.arthritis-health.example',
  'sports-health': 'https://www.sports-health.example',
} as const;

type Slug = keyof typeof BASE;

interface SampleArticle {
  newsletter: Slug;
  path: string;
  title: string;
  summary: string;
  topics: string[];
  daysAgo: number;
}

/** Titles from the publisher's Upper Back Pain hub; summaries in our own words. */
const ARTICLES: SampleArticle[] = [
  {
    newsletter: 'spine-health',
    path: '/conditions/upper-back-pain/all-about-upper-back-pain',
    title: 'All About Upper Back Pain',
    summary:
      'Muscle strain, posture and a few medical conditions explain most pain between the neck and the bottom of the rib cage. Here is how to tell them apart.',
    topics: ['Upper Back Pain'],
    daysAgo: 1,
  },
  {
    newsletter: 'spine-health',
    path: '/conditions/upper-back-pain/7-possible-causes-pain-under-your-shoulder-blade',
    title: '7 Possible Causes of Pain Under Your Shoulder Blade',
    summary:
      'From a strained rhomboid to a pinched nerve in the neck, seven common reasons for that ache under the shoulder blade, and what each one feels like.',
    topics: ['Upper Back Pain'],
    daysAgo: 2,
  },
  {
    newsletter: 'spine-health',
    path: '/wellness/exercise/5-exercises-upper-and-middle-back-pain',
    title: '5 Exercises for Upper and Middle Back Pain',
    summary:
      'Five gentle movements, from the cobra pose to scapular squeezes, that loosen a stiff upper back and strengthen the muscles that hold it upright.',
    topics: ['Upper Back Pain', 'Exercise'],
    daysAgo: 3,
  },
  {
    newsletter: 'spine-health',
    path: '/conditions/upper-back-pain/upper-back-pain-intercostal-muscle-strain',
    title: 'Upper Back Pain from Intercostal Muscle Strain',
    summary:
      'The small muscles between the ribs can be pulled by a twist, a cough or a lift. Learn the signs and how long recovery usually takes.',
    topics: ['Upper Back Pain'],
    daysAgo: 4,
  },
  {
    newsletter: 'spine-health',
    path: '/conditions/upper-back-pain/early-treatments-upper-back-pain',
    title: 'Early Treatments for Upper Back Pain',
    summary:
      'Rest, heat or ice, massage and a little movement: what to try first in the days after upper back pain starts.',
    topics: ['Upper Back Pain'],
    daysAgo: 5,
  },
  {
    newsletter: 'spine-health',
    path: '/conditions/herniated-disc/herniated-disc-upper-back',
    title: 'How a Herniated Disc in Your Upper Back Causes Pain, Numbness, and Weakness',
    summary:
      'Thoracic disc herniations are rare, but when a disc presses on a nerve the symptoms can wrap around the chest. What doctors look for.',
    topics: ['Herniated Disc', 'Upper Back Pain'],
    daysAgo: 6,
  },
  {
    newsletter: 'arthritis-health',
    path: '/conditions/upper-back-pain/upper-back-and-chest-pain',
    title: 'Understanding Upper Back and Chest Pain',
    summary:
      'When pain shows up in both the upper back and the chest, the cause may be in the spine, the ribs or elsewhere. When to get checked urgently.',
    topics: ['Upper Back Pain'],
    daysAgo: 1,
  },
  {
    newsletter: 'arthritis-health',
    path: '/conditions/upper-back-pain/thoracic-vertebrae-and-rib-cage',
    title: 'Thoracic Vertebrae and the Rib Cage',
    summary:
      'A tour of the twelve thoracic vertebrae and how the ribs attach to them, and why this part of the spine moves less than the neck or low back.',
    topics: ['Osteoporosis'],
    daysAgo: 3,
  },
  {
    newsletter: 'arthritis-health',
    path: '/conditions/upper-back-pain/medical-treatments-upper-back-pain',
    title: 'Medical Treatments for Upper Back Pain',
    summary: 'Physical therapy, medication, injections and electrotherapy: the options when home care is not enough.',
    topics: ['Chronic Pain'],
    daysAgo: 5,
  },
  {
    newsletter: 'sports-health',
    path: '/conditions/upper-back-pain/treating-intercostal-muscle-strain',
    title: 'Treating Intercostal Muscle Strain',
    summary: 'Breathing exercises, gentle stretches and a gradual return to sport after a rib muscle strain.',
    topics: ['Upper Back Pain'],
    daysAgo: 2,
  },
  {
    newsletter: 'sports-health',
    path: '/conditions/upper-back-pain/relieving-pain-under-shoulder-blade',
    title: 'Relieving the Pain Under Your Shoulder Blade',
    summary: 'Self-care and exercises that ease shoulder blade pain for athletes who throw, swim or lift.',
    topics: ['Upper Back Pain'],
    daysAgo: 4,
  },
  {
    newsletter: 'sports-health',
    path: '/conditions/upper-back-pain/what-causes-upper-left-back-pain',
    title: 'What Causes Upper Left Back Pain?',
    summary: 'Muscle, spine or something else? Common reasons for pain on the left side of the upper back.',
    topics: ['Upper Back Pain'],
    daysAgo: 6,
  },
];

/** Creates the sample newsletters, the guide and sample articles. Idempotent. */
export async function seed(ds: DataSource): Promise<void> {
  await ds.transaction(async (em) => {
    await em.query(
      `INSERT INTO guides (slug, title, description, file_name, content_type)
       VALUES ('natural-back-pain-relief', 'Natural Back Pain Relief: 16 Choices for Lasting Comfort',
               'Sixteen natural, drug-free ways to ease back pain and keep it from coming back.',
               'natural-back-pain-relief.html', 'text/html; charset=utf-8')
       ON CONFLICT (slug) DO NOTHING`,
    );
    const hasDefault: unknown[] = await em.query(`SELECT 1 FROM newsletters WHERE is_default`);
    const newsletters: [Slug, string, string, boolean][] = [
      [
        'spine-health',
        'Spine-health',
        'Fresh, original insights to help relieve back and neck pain, every week.',
        true,
      ],
      [
        'arthritis-health',
        'Arthritis-health',
        'Practical advice for living well with arthritis and joint pain, every week.',
        false,
      ],
      ['sports-health', 'Sports-health', 'Stay active and recover well from sports injuries, every week.', false],
    ];
    for (const [slug, name, description, isDefault] of newsletters) {
      const domain = new URL(BASE[slug]).hostname.replace(/^www\./, '');
      await em.query(
        `INSERT INTO newsletters (slug, name, description, from_name, from_email, is_default, guide_id)
         VALUES ($1, $2, $3, $2, $4, $5,
                 CASE WHEN $1 = 'spine-health' THEN (SELECT id FROM guides WHERE slug = 'natural-back-pain-relief') END)
         ON CONFLICT (slug) DO NOTHING`,
        [slug, name, description, `newsletter@${domain}`, isDefault && hasDefault.length === 0],
      );
    }
    for (const a of ARTICLES) {
      await em.query(
        `WITH art AS (
           INSERT INTO articles (url, title, summary, topics, published_at, source)
           VALUES ($1, $2, $3, $4::text[], now() - make_interval(days => $5), 'seed')
           ON CONFLICT (url) DO UPDATE SET title = EXCLUDED.title
           RETURNING id)
         INSERT INTO article_newsletters (article_id, newsletter_id)
         SELECT art.id, n.id FROM art, newsletters n WHERE n.slug = $6
         ON CONFLICT DO NOTHING`,
        [`${BASE[a.newsletter]}${a.path}`, a.title, a.summary, a.topics, a.daysAgo, a.newsletter],
      );
    }
  });
}
