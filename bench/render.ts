/**
 * Benchmark 3, in-process: one issue render (the only mjml2html of a digest) against the
 * per-recipient work (escaped Handlebars substitution), plus, for the record, what building the
 * MIME message costs per recipient.
 */
import mjml2html from 'mjml';
import MailComposer from 'nodemailer/lib/mail-composer';
import { loadConfig } from '#config/config.js';
import { DigestRenderer } from '#digests/digest-renderer.service.js';
import { MailRenderer } from '#mail/mail-renderer.service.js';
import { signToken } from '#subscriptions/tokens.js';
import { APP_SECRET, inProcessArticles, median, now } from './support.js';

export interface RenderResult {
  issueMs: number;
  mjml2htmlMs: number | null;
  personalizeUs: number;
  messageBuildUs: number;
  messageBuildBase64Us: number;
  messageBytes: number;
  htmlBytes: number;
  ratio: number;
  mjmlCallsPerIssue: number;
  recipients: number;
}

export async function bench3(opts: { reps: number; recipients: number }): Promise<RenderResult> {
  const config = loadConfig({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://unused@127.0.0.1/unused',
    SMTP_URL: 'smtp://127.0.0.1:25',
    APP_SECRET,
    PUBLIC_URL: 'http://mailroom.bench',
    PUBLIC_URL_ALLOW_HTTP: 'true', // a bench rig: no https here
  });
  const renderer = new DigestRenderer(config);
  await renderer.onModuleInit();
  const list = inProcessArticles('render');
  const date = new Date();

  // Warm-up, then timed issue renders; the count of mjml2html calls per issue is checked on the way.
  let issue = await renderer.renderIssue('Spine-health', list, date);
  const issueTimes: number[] = [];
  let calls = 0;
  for (let i = 0; i < opts.reps; i++) {
    const before = MailRenderer.mjmlCalls;
    const t0 = now();
    issue = await renderer.renderIssue('Spine-health', list, date);
    issueTimes.push(now() - t0);
    calls = Math.max(calls, MailRenderer.mjmlCalls - before);
  }

  // mjml2html alone on the issue's MJML, when the renderer's compiled issue template is reachable.
  let mjmlMs: number | null = null;
  const tpl = (renderer as unknown as { issueTemplate?: (vars: Record<string, unknown>) => string }).issueTemplate;
  if (typeof tpl === 'function') {
    const source = tpl({
      subject: issue.subject,
      preview: '',
      newsletterName: 'Spine-health',
      tagline: 'Your weekly guide',
      issueLabel: 'Tuesday',
      articles: list.map((a) => ({ ...a, topicLine: a.topics.join(' · ') })),
      footerReason: 'You are receiving this because you subscribed {{email}}.',
      postalAddress: config.postalAddress,
      greeting: '{{greeting}}',
      email: '{{email}}',
      unsubscribeUrl: '{{unsubscribeUrl}}',
      preferencesUrl: '{{preferencesUrl}}',
      clickReader: '{{clickReader}}',
    });
    await mjml2html(source, { validationLevel: 'strict', keepComments: false });
    const times: number[] = [];
    for (let i = 0; i < opts.reps; i++) {
      const t0 = now();
      await mjml2html(source, { validationLevel: 'strict', keepComments: false });
      times.push(now() - t0);
    }
    mjmlMs = median(times);
  }

  // Per recipient: substitution only (the templates are compiled on the first call and cached).
  const vars = (i: number) => {
    const url = `http://mailroom.bench/unsubscribe/${signToken(APP_SECRET, 'unsubscribe', String(i + 1))}`;
    return {
      greeting: `Hi Reader ${i},`,
      email: `reader${i}@example.com`,
      unsubscribeUrl: url,
      preferencesUrl: url,
      clickReader: `${i + 1}.AAAAAAAAAAAAAAAA`,
    };
  };
  const key = `bench:${Date.now()}`;
  renderer.personalize(key, issue, vars(0));
  const perRecipient: number[] = [];
  let bytes = 0;
  for (let r = 0; r < 3; r++) {
    const t0 = now();
    for (let i = 0; i < opts.recipients; i++) bytes = renderer.personalize(key, issue, vars(i)).html.length;
    perRecipient.push(((now() - t0) * 1000) / opts.recipients);
  }

  // For the record: personalise + MIME build (what nodemailer does per message before SMTP), with
  // nodemailer's default quoted-printable bodies and, for comparison, base64 bodies.
  const m = Math.min(opts.recipients, 200);
  let messageBytes = 0;
  const build = async (textEncoding?: 'base64'): Promise<number> => {
    const times: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = now();
      for (let i = 0; i < m; i++) {
        const mail = renderer.personalize(key, issue, vars(i));
        const out = await new MailComposer({
          from: { name: 'Spine-health', address: 'newsletter@spine-health.example' },
          to: { name: `Reader ${i}`, address: `reader${i}@example.com` },
          subject: mail.subject,
          html: mail.html,
          text: mail.text,
          ...(textEncoding ? { textEncoding } : {}),
        })
          .compile()
          .build();
        if (!textEncoding) messageBytes = out.length;
      }
      times.push(((now() - t0) * 1000) / m);
    }
    return median(times);
  };
  const messageBuildUs = await build();
  const messageBuildBase64Us = await build('base64');

  const issueMs = median(issueTimes);
  const personalizeUs = median(perRecipient);
  const denominatorMs = mjmlMs ?? issueMs;
  return {
    issueMs,
    mjml2htmlMs: mjmlMs,
    personalizeUs,
    messageBuildUs,
    messageBuildBase64Us,
    messageBytes,
    htmlBytes: bytes,
    ratio: personalizeUs / 1000 / denominatorMs,
    mjmlCallsPerIssue: calls,
    recipients: opts.recipients,
  };
}
