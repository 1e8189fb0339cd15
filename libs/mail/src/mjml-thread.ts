/**
 * The render thread's entry (see `MjmlThread`): compiles the MJML it is sent, one message at a
 * time, and answers with the HTML and text or the error's message.
 */
import { parentPort } from 'node:worker_threads';
import { compileMjmlHere, type MjmlValidation } from './mjml-compile.js';

export interface MjmlRequest {
  id: number;
  source: string;
  validation: MjmlValidation;
}
export type MjmlAnswer = { id: number; html: string; text: string } | { id: number; error: string };

parentPort?.on('message', (m: MjmlRequest) => {
  compileMjmlHere(m.source, m.validation).then(
    ({ html, text }) => parentPort!.postMessage({ id: m.id, html, text } satisfies MjmlAnswer),
    (err: unknown) =>
      parentPort!.postMessage({
        id: m.id,
        error: err instanceof Error ? err.message : String(err),
      } satisfies MjmlAnswer),
  );
});
