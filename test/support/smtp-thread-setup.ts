/**
 * Jest runs the TypeScript sources (compiled by SWC as it loads them), and the build's
 * `dist/…/smtp-thread.js` may be missing or stale: sending threads started in tests load
 * `libs/mail/src/smtp-thread.ts` through the same compiler instead.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { mjmlThreadEntry } from '#mail/mjml-threads.js';
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

// The render thread (see MjmlThread), likewise from its TypeScript source; it imports a sibling
// ('./mjml-compile.js'), so a `.js` that is not there resolves to its `.ts`.
const MJML_SOURCE = join(__dirname, '..', '..', 'libs', 'mail', 'src', 'mjml-thread.ts');
const MJML_BOOT = BOOT.replace(
  `require(${JSON.stringify(SOURCE)});`,
  `const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  try {
    return resolve.call(this, request, ...rest);
  } catch (err) {
    if (request.endsWith('.js')) return resolve.call(this, request.slice(0, -3) + '.ts', ...rest);
    throw err;
  }
};
require(${JSON.stringify(MJML_SOURCE)});`,
);
mjmlThreadEntry.start = () => new Worker(MJML_BOOT, { eval: true });
