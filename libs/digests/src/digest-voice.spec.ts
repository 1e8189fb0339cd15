import { subjectTemplateError } from '#subscriptions/subject-template.js';
import { checkVoice, digestSubject, introHtml } from './digest-voice.js';

const issue = {
  newsletterName: 'Spine-health',
  titles: ['Sciatica at night', 'Neck stretches'],
  date: new Date('2026-12-08T09:00:00Z'),
};

describe("the editor's voice", () => {
  it("subject: the digest's own, else the template, else the built-in line; always one header-safe line", () => {
    expect(digestSubject({}, issue)).toBe('Spine-health: Sciatica at night and 1 more');
    expect(digestSubject({ subjectTemplate: '{{newsletter}} for {{date}}: {{count}} new' }, issue)).toBe(
      'Spine-health for December 8, 2026: 2 new',
    );
    expect(digestSubject({ subject: '  Our pick\r\nBcc: x@example.com ', subjectTemplate: '{{count}}' }, issue)).toBe(
      'Our pick Bcc: x@example.com',
    );
    // A template saved before a rule changed is not trusted: the built-in line instead.
    expect(digestSubject({ subjectTemplate: '{{secret}}' }, issue)).toBe('Spine-health: Sciatica at night and 1 more');
    // Article titles are not templates.
    expect(digestSubject({}, { ...issue, titles: ['{{constructor}}'] })).toBe('Spine-health: {{constructor}}');
  });

  it('subject templates: known variables and if/unless only, one line, at most 200 characters', () => {
    expect(subjectTemplateError('{{newsletter}}{{#if more}} +{{more}}{{/if}}')).toBeNull();
    expect(subjectTemplateError('{{#unless more}}One{{/unless}}')).toBeNull();
    expect(subjectTemplateError('{{email}}')).toContain('unknown variables: email');
    expect(subjectTemplateError('{{#each titles}}{{this}}{{/each}}')).toContain('unknown variables');
    expect(subjectTemplateError('{{newsletter')).toContain('not a valid template');
    expect(subjectTemplateError('a\nb')).toBe('subjectTemplate must be one line');
    expect(subjectTemplateError('x'.repeat(201))).toContain('at most 200');
  });

  it('intro: Markdown to HTML without raw HTML, images or non-web links', () => {
    const html = introHtml(
      '**Hi** <b onmouseover="x()">there</b> [ok](https://a.example/) [no](javascript:alert(1)) ![i](https://t.example/i.gif) [mail](mailto:ed@example.com) [data](data:text/html,x)',
    )!;
    expect(html).toContain('<strong>Hi</strong>');
    expect(html).toContain('&lt;b onmouseover=&quot;x()&quot;&gt;there&lt;/b&gt;');
    expect(html).toContain('<a href="https://a.example/" style="color:#0b6e4f;">ok</a>');
    expect(html).toContain('<a href="mailto:ed@example.com" style="color:#0b6e4f;">mail</a>');
    expect(html).not.toMatch(/href="(javascript|data):/);
    expect(html).not.toContain('<img');
    expect(introHtml('   ')).toBeNull();
    expect(introHtml(null)).toBeNull();
  });

  it('checks the fields of a new digest: trimmed, empty ones null, one-line subject and preheader, lengths', () => {
    expect(checkVoice({ subject: '  Hello ', preheader: '', intro: 'a\r\nb' })).toEqual({
      voice: { subject: 'Hello', preheader: null, intro: 'a\nb' },
    });
    expect(checkVoice({ subject: 'a\nb', preheader: 7, intro: 'x\0' })).toEqual({
      errors: ['subject must be one line', 'preheader must be a string', 'intro must not contain NUL characters'],
    });
  });
});
