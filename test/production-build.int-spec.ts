/**
 * The documented production paths on a built tree shaped like the runtime image (dist/, templates/,
 * content/, package.json; no sources, no tsconfig): the migrate job migrates and seeds nothing, the
 * CLI runs without rebuilding, and the built `npm run dev` starts from a private (0700) directory,
 * answers /health and stops in order (apps, catcher, database) on Ctrl-C, leaving nothing behind.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { PG_ADMIN_URL, query } from './support/db.js';

const ROOT = join(__dirname, '..');
const run = promisify(execFile);
const secretFiles = (): string[] => readdirSync(tmpdir()).filter((n) => /^(pg-password-|mailroom-initdb-)/.test(n));

async function emptyDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `mr_prodbuild_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => done(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

describe('production paths on a built tree', () => {
  let app: string; // mkdtemp: mode 0700, like /root or mktemp -d
  let db: { url: string; drop: () => Promise<void> };
  const env = (extra: Record<string, string>): NodeJS.ProcessEnv => {
    const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C' };
    return { ...base, ...extra };
  };

  beforeAll(async () => {
    app = mkdtempSync(join(tmpdir(), 'mailroom-prod-'));
    for (const entry of ['package.json', 'package-lock.json', 'templates', 'content']) {
      cpSync(join(ROOT, entry), join(app, entry), { recursive: true });
    }
    symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'));
    // `npm run build`, into this tree (its own build-info file: the checkout's dist/ is untouched).
    await run(
      process.execPath,
      [
        join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
        '-p',
        join(ROOT, 'tsconfig.build.json'),
        '--outDir',
        join(app, 'dist'),
        '--tsBuildInfoFile',
        join(app, '.tsbuildinfo'),
      ],
      { cwd: ROOT },
    );
    db = await emptyDatabase();
  }, 120_000);

  afterAll(async () => {
    await db?.drop();
    rmSync(app, { recursive: true, force: true });
  });

  it('documents only scripts that exist, and compose migrates without seeding', () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: object }).scripts;
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const named = [...readme.matchAll(/npm run (?:--silent )?(\w[\w:-]*)/g)].map((m) => m[1]);
    expect(named.filter((name) => !(name in scripts))).toEqual([]);
    const compose = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
    const migrateService = /\n {2}migrate:\n([\s\S]*?)\n {2}\w/.exec(compose)?.[1] ?? '';
    expect(migrateService).toContain('dist/scripts/migrate.js');
    expect(migrateService).not.toContain('seed');
    expect(compose).toContain('PUBLIC_URL_ALLOW_HTTP');
  });

  it('start:migrate applies the migrations and seeds nothing; start:cli runs without a rebuild', async () => {
    const prod = env({ NODE_ENV: 'production', DATABASE_URL: db.url });
    const migrated = await run('npm', ['run', '--silent', 'start:migrate'], { cwd: app, env: prod });
    expect(migrated.stdout).toMatch(/Applied migrations: /);
    expect(await query(db.url, 'SELECT slug FROM newsletters')).toEqual([]);

    // No tsconfig or sources here: a script that rebuilt first would fail.
    const cli = (...args: string[]) =>
      run('npm', ['run', '--silent', 'start:cli', '--', ...args], {
        cwd: app,
        env: { ...prod, MAILROOM_USER_PASSWORD: 'correct horse battery staple' },
      });
    await cli('user:create', '--email', 'first@news.example.com', '--role', 'admin');
    expect((await cli('user:list')).stdout).toContain('first@news.example.com');
  });

  it('dev starts from a 0700 directory, serves, and stops in order on Ctrl-C', async () => {
    const before = secretFiles();
    const port = await freePort();
    const dev = spawn(process.execPath, ['dist/scripts/dev.js'], {
      cwd: app,
      env: env({ PORT: String(port) }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    dev.stdout.on('data', (d: Buffer) => (out += d.toString()));
    dev.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((done) => dev.once('exit', (code) => done(code)));
    let relocated: string | undefined;
    try {
      const deadline = Date.now() + 45_000;
      while (!out.includes('Mailroom is running') && Date.now() < deadline && dev.exitCode === null) {
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(out).toContain('Mailroom is running');
      // Dev speaks in readable lines: no JSON log lines, no map of every route.
      expect(out).not.toMatch(/^\{"level"/m);
      expect(out).not.toMatch(/Mapped \{/);
      relocated = /\(data: (\S+?)[,)]/.exec(out)?.[1];
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
      const pgPid = Number(
        readFileSync(join(relocated ?? join(app, '.data', 'pg'), 'postmaster.pid'), 'utf8').split('\n')[0],
      );

      dev.kill('SIGINT');
      expect(await exited).toBe(0);
      const stopping = out.indexOf('Stopping…');
      expect(stopping).toBeGreaterThan(0);
      const order = ['Stopping…', '[maildev] stopped', '[postgres] stopped'].map((line) => out.indexOf(line));
      expect(order).toEqual([...order].sort((a, b) => a - b));
      expect(order.every((i) => i >= 0)).toBe(true);
      expect(out.slice(stopping)).not.toMatch(/FATAL|terminating connection|ECONNRESET|Error/);
      expect(() => process.kill(pgPid, 0)).toThrow();
      expect(secretFiles()).toEqual(before);
    } finally {
      if (dev.exitCode === null) dev.kill('SIGKILL');
      // As root the cluster lives outside the private directory: remove it too.
      if (relocated && !relocated.startsWith(app) && existsSync(relocated)) {
        execFileSync('rm', ['-rf', join(relocated, '..')]);
      }
    }
  });
});
