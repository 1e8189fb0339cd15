import { Module } from '@nestjs/common';
import { DkimKeys } from './dkim-keys.service.js';
import { DkimKeysRepository } from './dkim-keys.repository.js';

/** DKIM keys alone (the CLI needs no more); the mail module builds on it. */
@Module({ providers: [DkimKeys, DkimKeysRepository], exports: [DkimKeys] })
export class DkimModule {}
