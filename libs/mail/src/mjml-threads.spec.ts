import { compileMjmlHere } from './mjml-compile.js';
import { MjmlThread, mjmlThreadEntry } from './mjml-threads.js';

const SOURCE = `<mjml><mj-body><mj-section><mj-column>
  <mj-text>Hello {{greeting}} <a href="https://example.com/" style="color:#0b6e4f;">a link</a></mj-text>
</mj-column></mj-section></mj-body></mjml>`;

describe('MjmlThread', () => {
  const thread = new MjmlThread();
  const start = mjmlThreadEntry.start;
  let started = 0;
  beforeAll(() => {
    mjmlThreadEntry.start = () => {
      started += 1;
      return start();
    };
  });
  afterAll(async () => {
    mjmlThreadEntry.start = start;
    await thread.close();
  });

  it('renders in its thread exactly what this thread renders', async () => {
    const [there, here] = await Promise.all([thread.compile(SOURCE, 'skip'), compileMjmlHere(SOURCE, 'skip')]);
    expect(there).toEqual(here);
    expect(there.text).toContain('Hello {{greeting}}');
    expect(started).toBe(1);
    // Several at once on the one thread, each answered with its own.
    const many = await Promise.all([1, 2, 3].map((n) => thread.compile(SOURCE.replace('Hello', `Hello ${n}`), 'skip')));
    expect(many.map((m) => /Hello (\d)/.exec(m.text)?.[1])).toEqual(['1', '2', '3']);
    expect(started).toBe(1);
  });

  it("passes MJML's own errors on, and replaces a thread that is gone", async () => {
    await expect(thread.compile('<mjml><mj-body><mj-nonsense /></mj-body></mjml>', 'strict')).rejects.toThrow(
      /ValidationError|MJML errors/,
    );
    await thread.close();
    expect((await thread.compile(SOURCE, 'skip')).html).toContain('a link');
    expect(started).toBe(2);
  });
});
