/**
 * Jest runs the TypeScript sources (compiled by SWC as it loads them), and the build's
 * `dist/…/smtp-thread.js` may be missing or stale: sending threads started in tests load
 * `libs/mail/src/smtp-thread.ts` through the same compiler instead.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { smtpThreadEntry } from '#mail/smtp-threads.js';

const SOURCE = join(__dirname, '..', '..', 'libs', 'mail', 'src', 'smtp-thread.ts');

const BOOT = `
const { readFileSync } = require('node:fs');
const { transformSync } = require('@swc/core');
require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(readFileSync(filename, 'utf8'), {
    filename,
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
require(${JSON.stringify(SOURCE)});
`;

smtpThreadEntry.start = (init) => new Worker(BOOT, { eval: true, workerData: init });
