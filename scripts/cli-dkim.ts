import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { parseArgs } from 'node:util';
import type { AppConfig } from '#config/config.js';
import { ConfigModule } from '#core/config.module.js';
import { DbModule } from '#db/db.module.js';
import { DkimInputError } from '#mail/dkim/dkim-key-material.js';
import { type DkimKeyInfo, DkimKeys } from '#mail/dkim/dkim-keys.service.js';
import { DkimModule } from '#mail/dkim/dkim.module.js';

export const DKIM_USAGE = `  npm run cli -- dkim generate <domain> [--selector <s>]
                                                       make a DKIM key for a From domain (it signs from now
                                                       on; the domain's previous key is retired) and print
                                                       the DNS TXT record to publish; default selector mrYYYYMM
  npm run cli -- dkim list                             every key: domain, selector, active or retired, record
  npm run cli -- dkim retire <domain> <selector>       stop signing with a key (mail from the domain goes unsigned)
  npm run cli -- dkim remove <domain> <selector>       delete a retired key once its DNS record is gone`;

export function isDkimCommand(command: string | undefined): boolean {
  return command === 'dkim';
}

export interface DkimCliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const EX_USAGE = 64;
const EX_DATAERR = 65;

/** The record as a publisher needs it: the name, the value and a zone file line (strings ≤ 255 characters). */
export function printRecord(k: DkimKeyInfo, io: DkimCliIo): void {
  io.out(`Publish this DNS TXT record for ${k.domain} (selector ${k.selector}):`);
  io.out('');
  io.out(`  name:  ${k.record.name}`);
  io.out(`  value: ${k.record.value}`);
  io.out('');
  io.out('As a zone file line (the value split into strings of at most 255 characters):');
  io.out('');
  io.out(k.record.zoneLine);
}

/** `dkim generate|list|retire|remove`; returns the exit code. */
export async function runDkimCommand(argv: string[], keys: DkimKeys, io: DkimCliIo): Promise<number> {
  let values: { selector?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: { selector: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    io.err(err instanceof Error ? err.message : String(err));
    return EX_USAGE;
  }
  const [sub, domain, selector] = positionals;
  try {
    switch (sub) {
      case 'generate': {
        if (!domain || positionals.length > 2) break;
        const key = await keys.generate(domain, values.selector);
        printRecord(key, io);
        io.out('');
        io.out(
          `Mail from ${key.domain} is signed with this key from now on (running workers pick it up within 2 seconds).`,
        );
        return 0;
      }
      case 'list': {
        if (positionals.length > 1 || values.selector !== undefined) break;
        const all = await keys.list();
        if (all.length === 0) io.out('No DKIM keys yet: npm run cli -- dkim generate <domain>');
        for (const k of all) {
          const state = k.active ? 'active ' : `retired ${k.retiredAt?.toISOString() ?? ''}`;
          io.out(`${k.domain}\t${k.selector}\t${state}\tcreated ${k.createdAt.toISOString()}`);
          io.out(`  ${k.record.zoneLine}`);
        }
        return 0;
      }
      case 'retire':
      case 'remove': {
        if (!domain || !selector || positionals.length > 3 || values.selector !== undefined) break;
        if (sub === 'retire') await keys.retire(domain, selector);
        else await keys.remove(domain, selector);
        io.out(
          sub === 'retire'
            ? `Retired ${selector}._domainkey.${domain}: leave its DNS record up until mail signed with it has been delivered (a few days).`
            : `Removed ${selector}._domainkey.${domain}.`,
        );
        return 0;
      }
    }
  } catch (err) {
    if (!(err instanceof DkimInputError)) throw err;
    io.err(err.message);
    return EX_DATAERR;
  }
  io.err(`Usage:\n${DKIM_USAGE}`);
  return EX_USAGE;
}

/** The `dkim` command against a database and APP_SECRET (`config`): what `npm run cli -- dkim …` runs. */
export async function dkimCli(argv: string[], config: AppConfig, io: DkimCliIo): Promise<number> {
  @Module({ imports: [ConfigModule.forRoot(config), DbModule, DkimModule] })
  class CliDkimModule {}
  const app = await NestFactory.createApplicationContext(CliDkimModule, { logger: ['error', 'warn'] });
  try {
    return await runDkimCommand(argv, app.get(DkimKeys), io);
  } finally {
    await app.close();
  }
}
