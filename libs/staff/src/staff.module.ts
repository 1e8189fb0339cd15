import { Module } from '@nestjs/common';
import { StaffAuthService } from './staff-auth.service.js';
import { StaffRepository } from './staff.repository.js';
import { StaffSessionsService } from './staff-sessions.service.js';
import { StaffUsersService } from './staff-users.service.js';

const PROVIDERS = [StaffRepository, StaffUsersService, StaffSessionsService, StaffAuthService];

/** Console staff: accounts (argon2id), sessions, sign-in with a rate limit. */
@Module({ providers: PROVIDERS, exports: PROVIDERS })
export class StaffModule {}
