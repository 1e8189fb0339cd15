import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/**
 * A throw-away Redis server of our own, to stop and start under a running app. By default it keeps
 * nothing on disk, so it comes back empty; with `appendOnlyDir` it runs as the README's runbook
 * says (AOF, fsync every second) and comes back with what it had written.
 */
export class ThrowawayRedis {
  private proc?: ChildProcess;
  constructor(
    readonly port: number,
    private readonly opts: { appendOnlyDir?: string } = {},
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Killed by a signal, a process has no exit code but a signal code. */
  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const persistence = this.opts.appendOnlyDir
      ? ['--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', this.opts.appendOnlyDir]
      : ['--appendonly', 'no'];
    this.proc = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--maxmemory-policy',
        'noeviction',
        ...persistence,
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = connect(this.port, '127.0.0.1');
        s.once('connect', () => {
          s.end();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`redis-server did not start on ${this.port}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }
}
