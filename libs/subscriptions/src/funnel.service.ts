import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { parseIsoTime } from './csv-fields.js';
import { type FunnelRow, FunnelRepository } from './funnel.repository.js';

/** The period a funnel covers when no `since` is given. */
export const FUNNEL_DEFAULT_DAYS = 30;

const SINCE_MESSAGE =
  'since must be an ISO 8601 date or date-time with Z or an offset, such as 2026-01-31 (midnight UTC) or 2026-01-31T09:00:00Z';

/**
 * `since` from a query string: absent → `days` ago; a date alone is midnight UTC. Anything else,
 * or the parameter given twice, is a 400 naming the accepted forms.
 */
export function parseSince(raw: unknown, now = new Date(), days = FUNNEL_DEFAULT_DAYS): Date {
  if (raw === undefined || raw === '') return new Date(now.getTime() - days * 86_400_000);
  if (typeof raw !== 'string') throw new BadRequestException([SINCE_MESSAGE]);
  // An unencoded `+` of an offset arrives as a space: read it back as the `+` it was.
  const parsed = parseIsoTime(
    raw.trim().replace(/(T\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)$/, '$1+$2'),
  );
  if (!parsed) throw new BadRequestException([SINCE_MESSAGE]);
  // Before 1970 there are no subscriptions: clamping keeps far-off years within PostgreSQL's range.
  return parsed.getTime() < 0 ? new Date(0) : parsed;
}

/** Which article pages bring readers who stay: the signup funnel of a newsletter per source. */
@Injectable()
export class FunnelService {
  constructor(private readonly repo: FunnelRepository) {}

  /** The admin API's route: `since` as given in the query string (400 when it is not a time). */
  async fromQuery(slug: string, since: unknown): Promise<FunnelRow[]> {
    return this.bySource(slug, parseSince(since));
  }

  /** 404 for an unknown newsletter. Subscriptions without a source are the row with `source: null`. */
  async bySource(slug: string, since: Date): Promise<FunnelRow[]> {
    const found = await this.repo.bySource(slug, since);
    if (!found) throw new NotFoundException(`Newsletter "${slug}" does not exist`);
    return found;
  }
}
