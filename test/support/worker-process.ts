import { type ChildProcess, execSync, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const MAIN = join(ROOT, 'dist', 'apps', 'worker', 'src', 'main.js');

/** Compiles the apps (tsc) once per run so fault tests can drive real worker processes. */
export function buildOnce(): void {
  const marker = join(ROOT, 'dist', '.tsbuildinfo');
  const fresh = existsSync(MAIN) && existsSync(marker) && Date.now() - statSync(marker).mtimeMs < 60_000;
  if (!fresh) execSync('npx tsc -p tsconfig.build.json', { cwd: ROOT, stdio: 'inherit' });
}

/** A real worker process (`node dist/apps/worker/src/main.js`) with the given environment. */
export class WorkerProcess {
  private proc?: ChildProcess;
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;

  constructor(private readonly env: Record<string, string>) {}

  start(): this {
    this.exitCode = null;
    this.signal = null;
    this.proc = spawn(process.execPath, [MAIN], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...this.env },
      stdio: ['ignore', 'ignore', process.env.WORKER_STDERR ? 'inherit' : 'ignore'],
    });
    this.proc.once('exit', (code, signal) => {
      this.exitCode = code;
      this.signal = signal;
    });
    return this;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Sends a signal and resolves when the process has exited (ms it took). */
  async stop(signal: NodeJS.Signals): Promise<number> {
    const p = this.proc;
    if (!p || !this.running) return 0;
    const started = Date.now();
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
    return Date.now() - started;
  }
}
