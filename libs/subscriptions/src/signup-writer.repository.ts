import { Injectable } from '@nestjs/common';
import { GroupWriter } from '#db/group-writer.js';
import { PreparedPg } from '#db/prepared-pg.service.js';
import { type SignupRequest, SubscriptionsRepository } from './subscriptions.repository.js';

/**
 * Statements under way at once. Sign-ups that arrive while they run go together in the next one:
 * under load a statement carries several, so the database runs (and commits) one statement for
 * them instead of one each, and the api writes to its socket once.
 */
export const SIGNUP_TRIPS = 2;
/** Sign-ups in one statement at most. */
export const SIGNUP_GROUP = 64;

/** The sign-up path's writer: each sign-up waits for its own commit; concurrent ones share a statement. */
@Injectable()
export class SignupWriter {
  private readonly writer: GroupWriter<SignupRequest>;

  constructor(repo: SubscriptionsRepository, pg: PreparedPg) {
    this.writer = new GroupWriter<SignupRequest>(
      (reqs) => repo.subscribe(pg, reqs),
      (req) => repo.subscribe(pg, [req]),
      { maxTrips: SIGNUP_TRIPS, maxGroup: SIGNUP_GROUP },
    );
  }

  /** Resolves once the sign-up is committed. */
  write(req: SignupRequest): Promise<void> {
    return this.writer.write(req);
  }
}
