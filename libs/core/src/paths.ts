import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

function isRoot(dir: string): boolean {
  return existsSync(join(dir, 'templates', 'mail')) && existsSync(join(dir, 'package.json'));
}

function walkUp(start: string): string | undefined {
  let dir = resolve(start);
  for (;;) {
    if (isRoot(dir)) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The repository root (where templates/ and content/ live): from the entry script, else the working directory. */
function findRoot(): string {
  const root = (process.argv[1] && walkUp(dirname(process.argv[1]))) || walkUp(process.cwd());
  if (!root) throw new Error('Cannot find the Mailroom root (templates/ and package.json): run from the repository');
  return root;
}

export const ROOT_DIR = findRoot();
export const TEMPLATES_DIR = join(ROOT_DIR, 'templates');
export const CONTENT_DIR = join(ROOT_DIR, 'content');
