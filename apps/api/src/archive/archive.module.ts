import { Module } from '@nestjs/common';
import { PagesService } from '../pages/pages.service.js';
import { ArchiveController } from './archive.controller.js';
import { ArchiveRepository } from './archive.repository.js';
import { ArchiveService } from './archive.service.js';

/**
 * The public archive, web version and RSS feed of sent digests. Needs the global config, database
 * and throttler modules; its pages share the reader pages' layout (its own PagesService instance).
 */
@Module({
  controllers: [ArchiveController],
  providers: [ArchiveRepository, ArchiveService, PagesService],
})
export class ArchiveModule {}
