import { parseArgs } from 'node:util';
import { PASSWORD_MIN_LENGTH } from '#staff/passwords.js';
import type { FieldErrors, StaffUsersService } from '#staff/staff-users.service.js';

export const USER_COMMANDS = ['user:create', 'user:password', 'user:list'] as const;
export type UserCommand = (typeof USER_COMMANDS)[number];

export const USER_USAGE = `  npm run cli -- user:create --email <email> --role admin|marketer [--password <pw>]
                                                       create a console user
  npm run cli -- user:password --email <email> [--password <pw>]
                                                       set a user's password; their sessions end
  npm run cli -- user:list                             list console users
  The password comes from --password, else MAILROOM_USER_PASSWORD, else a prompt on a terminal
  (at least ${PASSWORD_MIN_LENGTH} characters; --password is visible to other local users in ps).`;

export function isUserCommand(command: string | undefined): command is UserCommand {
  return (USER_COMMANDS as readonly string[]).includes(command ?? '');
}

/** What the user commands touch outside themselves, so tests can drive them. */
export interface CliIo {
  env: Record<string, string | undefined>;
  /** Present only when stdin is a terminal: asks without echoing. */
  promptHidden?: (question: string) => Promise<string>;
  out: (line: string) => void;
  err: (line: string) => void;
}

const EX_USAGE = 64;
const EX_DATAERR = 65;
const EX_NOUSER = 67;

function describe(errors: FieldErrors): string {
  return Object.values(errors).join('; ');
}

async function password(given: string | undefined, io: CliIo, confirm: boolean): Promise<string | null> {
  if (given !== undefined) return given;
  const fromEnv = io.env.MAILROOM_USER_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!io.promptHidden) return null;
  const first = await io.promptHidden('Password: ');
  if (confirm && (await io.promptHidden('Repeat the password: ')) !== first) {
    io.err('The two passwords do not match');
    return null;
  }
  return first;
}

/** `user:create`, `user:password`, `user:list`; returns the exit code. */
export async function runUserCommand(
  command: UserCommand,
  argv: string[],
  users: StaffUsersService,
  io: CliIo,
): Promise<number> {
  let values: { email?: string; role?: string; password?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { email: { type: 'string' }, role: { type: 'string' }, password: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(err instanceof Error ? err.message : String(err));
    return EX_USAGE;
  }
  if (command === 'user:list') {
    for (const u of await users.list()) io.out(`${u.email}\t${u.role}\tcreated ${u.createdAt.toISOString()}`);
    return 0;
  }
  if (!values.email || (command === 'user:create' && !values.role)) {
    io.err(command === 'user:create' ? 'user:create needs --email and --role' : 'user:password needs --email');
    return EX_USAGE;
  }
  const pw = await password(values.password, io, true);
  if (pw === null) {
    io.err('No password: pass --password, set MAILROOM_USER_PASSWORD, or run on a terminal to be asked');
    return EX_USAGE;
  }
  if (command === 'user:create') {
    const result = await users.create({ email: values.email, role: values.role, password: pw });
    if (!result.ok) {
      io.err(describe(result.errors));
      return EX_DATAERR;
    }
    io.out(`Created ${result.user.role} ${result.user.email} (id ${result.user.id}). Sign in at /admin/login.`);
    return 0;
  }
  const user = await users.findByEmail(values.email);
  if (!user) {
    io.err(`No console user with the email ${values.email}`);
    return EX_NOUSER;
  }
  const result = await users.changePassword(user.id, pw);
  if (!result.ok) {
    io.err(describe(result.errors));
    return EX_DATAERR;
  }
  io.out(`Password changed for ${user.email}; their sessions have ended.`);
  return 0;
}

/** Reads a line from the terminal without echoing it. */
export function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.resume();
    let value = '';
    const done = (fn: () => void) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      fn();
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done(() => resolve(value));
        if (ch === '\u0003') return done(() => reject(new Error('cancelled')));
        if (ch === '\u007f' || ch === '\b') value = Array.from(value).slice(0, -1).join('');
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
