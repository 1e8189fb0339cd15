import 'reflect-metadata';
import { StaffUsersService } from '#staff/staff-users.service.js';
import { admin, waitUntil } from './support/admin.js';
import type { Backend } from './support/apps.js';
import { addAudience } from './support/audience.js';
import { ConsoleBrowser } from './support/console.js';
import { query } from './support/db.js';
import { useStack } from './support/stack.js';

interface Digest {
  id: string;
  status: string;
  subject: string | null;
  preheader: string | null;
  sent: number;
}

const MARKETER = { email: 'voice-marketer@example.com', password: 'marketing-password-1' };

const INTRO = [
  'Hello from the **editors**: this week is about *sleep*.',
  '',
  '- [Our sleep guide](https://www.spine-health.example/sleep)',
  '- <script>alert(1)</script> and <img src="https://tracker.example/p.gif">',
  '- [a trap](javascript:alert(1)) and ![pixel](https://tracker.example/q.gif)',
].join('\n');

describe.each<Backend>(['postgres', 'redis'])("the editor's voice on the %s queue backend", (backend) => {
  const stack = useStack({
    label: `voice_${backend}`,
    queue: backend,
    env: { SEND_RATE_PER_SECOND: '10000' },
    prepare: () => addAudience(stack.db.url, { prefix: 'voice', count: 3, newsletter: 'spine-health' }),
  });
  const base = () => stack.apps.baseUrl;
  const digest = (id: string) => admin<Digest>(base(), 'GET', `/v1/digests/${id}`).then((r) => r.body);
  const sentDigest = (id: string) =>
    waitUntil(
      () => digest(id),
      (d) => d.status === 'sent',
      60_000,
      `digest ${id}`,
    );
  /** The copies of digest `subject` the readers got. */
  const copies = (subject: string) =>
    stack.smtp.messages.filter((m) => m.parsed.subject === subject && m.envelope.to[0]?.startsWith('voice'));
  let article = 0;
  const addArticle = (title: string) =>
    admin(base(), 'POST', '/v1/articles', {
      url: `https://www.spine-health.example/voice/${backend}/${(article += 1)}`,
      title,
      publishedAt: new Date(Date.now() - 3_600_000).toISOString(),
      newsletters: ['spine-health'],
    });

  it('sends the given subject, the preheader first in the HTML and the text, and a safe Markdown intro', async () => {
    await addArticle('Sleeping positions for a sore back');
    const subject = 'Sleep better with back pain: our editors pick five';
    const preheader = 'Plus what your mattress has to do with it.';
    const created = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/spine-health/digests', {
      subject,
      preheader,
      intro: INTRO,
    });
    expect(created.status).toBe(201);
    // Before it is planned, the digest already says what it will be.
    const before = await digest(created.body.id);
    expect(before).toMatchObject({ subject, preheader });

    await sentDigest(created.body.id);
    await stack.smtp.waitFor(() => copies(subject).length >= 3, 30_000);
    const [mail] = copies(subject);
    const html = mail.parsed.html as string;
    // The hidden preheader is the first text of the body.
    const body = html.slice(html.indexOf('<body'));
    const firstText = body
      .replace(/<style[\s\S]*?<\/style>/g, '')
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim();
    expect(firstText.startsWith(preheader)).toBe(true);
    expect(html).toMatch(/<div class="mr-preheader" style="display:none[^"]*">Plus what your mattress/);
    expect((mail.parsed.text ?? '').trimStart().startsWith(preheader)).toBe(true);
    // The intro: Markdown rendered, raw HTML shown as text, no script, no image, no javascript: link.
    expect(html).toContain('<strong>editors</strong>');
    expect(html).toContain('<em>sleep</em>');
    expect(html).toMatch(/<a href="https:\/\/www\.spine-health\.example\/sleep"[^>]*>Our sleep guide<\/a>/);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<img[^>]+tracker\.example/);
    expect(html).not.toMatch(/href="javascript:/i);
    expect(mail.parsed.text).toContain('Hello from the editors: this week is about sleep.');
    // The generic line gives way to the editor's intro.
    expect(html).not.toContain('here are our newest articles');
    expect((await digest(created.body.id)).subject).toBe(subject);
  });

  it("uses the newsletter's subject template when a digest gives none, and the default line otherwise", async () => {
    const bad = await admin<{ message: string[] }>(base(), 'PATCH', '/v1/newsletters/spine-health', {
      subjectTemplate: 'News {{reader.email}}',
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('subjectTemplate uses unknown variables: reader.email');
    const twoLines = await admin(base(), 'PATCH', '/v1/newsletters/spine-health', { subjectTemplate: 'a\nb' });
    expect(twoLines.status).toBe(400);

    const ok = await admin<{ subjectTemplate: string }>(base(), 'PATCH', '/v1/newsletters/spine-health', {
      subjectTemplate: 'This week at {{newsletter}}: {{firstTitle}} (+{{more}})',
    });
    expect(ok.status).toBe(200);
    expect(ok.body.subjectTemplate).toBe('This week at {{newsletter}}: {{firstTitle}} (+{{more}})');
    await addArticle('Stretches for the morning');
    const created = await admin<{ id: string }>(base(), 'POST', '/v1/newsletters/spine-health/digests', {});
    const d = await sentDigest(created.body.id);
    const [{ name }] = await query<{ name: string }>(
      stack.db.url,
      `SELECT name FROM newsletters WHERE slug = 'spine-health'`,
    );
    expect(d.subject).toBe(`This week at ${name}: Stretches for the morning (+0)`);
    await stack.smtp.waitFor(() => copies(d.subject!).length >= 3, 30_000);
    const html = copies(d.subject!)[0].parsed.html as string;
    expect(html).toContain('here are our newest articles.');
    expect(html).not.toContain('picked for you');
    // Back to the built-in subject.
    expect((await admin(base(), 'PATCH', '/v1/newsletters/spine-health', { subjectTemplate: '' })).status).toBe(200);
    expect((await admin<{ subjectTemplate: null }>(base(), 'GET', '/v1/newsletters/spine-health')).body).toMatchObject({
      subjectTemplate: null,
    });
  });

  it('refuses a subject or preheader of two lines or too long, an intro over 5 000 characters, or a non-string', async () => {
    const post = (body: unknown) =>
      admin<{ message: string[] }>(base(), 'POST', '/v1/newsletters/spine-health/digests', body);
    const cases: [unknown, string][] = [
      [{ subject: 'Hello\r\nBcc: everyone@example.com' }, 'subject must be one line'],
      [{ subject: 'x'.repeat(151) }, 'subject must be at most 150 characters'],
      [{ preheader: 'one\ntwo' }, 'preheader must be one line'],
      [{ preheader: 'x'.repeat(201) }, 'preheader must be at most 200 characters'],
      [{ intro: 'x'.repeat(5001) }, 'intro must be at most 5000 characters'],
      [{ intro: { nested: true } }, 'intro must be a string'],
    ];
    const before = (await query(stack.db.url, `SELECT 1 FROM digests`)).length;
    for (const [body, message] of cases) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).toContain(message);
    }
    expect((await query(stack.db.url, `SELECT 1 FROM digests`)).length).toBe(before);
  });

  it("the console's compose page edits the three fields and its preview shows them", async () => {
    expect((await stack.apps.api.get(StaffUsersService).create({ ...MARKETER, role: 'marketer' })).ok).toBe(true);
    const m = new ConsoleBrowser(base());
    expect((await m.signIn(MARKETER.email, MARKETER.password)).status).toBe(303);
    await addArticle('Walking after a flare-up');
    const page = await m.get('/admin/digests/new?newsletter=spine-health');
    expect(page.status).toBe(200);
    for (const id of ['compose-subject', 'compose-preheader', 'compose-intro'])
      expect(page.text).toContain(`id="${id}"`);
    const csrf = ConsoleBrowser.csrf(page.text);
    const ids = [...page.text.matchAll(/name="offered" value="(\d+)"/g)].map((x) => x[1]);
    const form = (action: string, voice: Record<string, string>) => {
      const body = new URLSearchParams({ _csrf: csrf, newsletter: 'spine-health', action, ...voice });
      for (const id of ids) body.append('offered', id);
      body.append('article', ids[0]);
      return m.request('POST', '/admin/digests', body.toString(), {
        'content-type': 'application/x-www-form-urlencoded',
      });
    };

    const preview = await form('preview', { subject: 'Walk it off', preheader: 'Gently.', intro: 'A **short** walk.' });
    expect(preview.status).toBe(200);
    expect(preview.text).toContain('value="Walk it off"');
    const src = /<iframe src="([^"]+)" title="Preview at desktop width"/.exec(preview.text)![1].replace(/&amp;/g, '&');
    const frame = await m.get(src.replace(/&#x3D;/g, '='));
    expect(frame.status).toBe(200);
    expect(frame.text).toContain('<strong>short</strong>');
    expect(frame.text).toMatch(/class="mr-preheader"[^>]*>Gently\./);

    const refused = await form('schedule', { subject: 'x'.repeat(151), sendAt: '2099-01-01T09:00', timezone: 'UTC' });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('id="compose-subject-error"');
    expect(refused.text).toContain('Subject must be at most 150 characters');

    // The newsletter page sets the default subject.
    const nl = await m.get('/admin/newsletters/spine-health');
    expect(nl.text).toContain('id="nl-subject-template"');
    expect(nl.text).toContain('<code>{{newsletter}}</code>');
    const save = (subjectTemplate: string) =>
      m.post('/admin/newsletters/spine-health', {
        _csrf: ConsoleBrowser.csrf(nl.text),
        name: 'Spine-health',
        subjectTemplate,
      });
    const wrong = await save('{{reader}} news');
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('id="nl-subject-template-error"');
    expect(wrong.text).toContain('subjectTemplate uses unknown variables: reader');
    expect((await save('{{newsletter}} weekly: {{firstTitle}}')).status).toBe(303);
    const [row] = await query<{ subject_template: string }>(
      stack.db.url,
      `SELECT subject_template FROM newsletters WHERE slug = 'spine-health'`,
    );
    expect(row.subject_template).toBe('{{newsletter}} weekly: {{firstTitle}}');
    expect((await save('')).status).toBe(303);
  });
});
