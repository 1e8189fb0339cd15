import type { Claim } from './ledger-writer.js';

/**
 * What a batch does with one row of a claim round trip:
 * - `send`: claimed and still mailable: build, send, record;
 * - `skip`: no longer mailable (refused at the claim, or an unsubscribe heard since): marked skipped;
 * - `pass`: held by another attempt (a retried or resumed batch): that attempt's to send;
 * - `stop`: the digest stopped (cancelled, paused): this row and the rest claimed with it go back
 *   to pending, and the batch ends as cancelled;
 * - `halt`: the batch is breaking off (a lane failed, the worker is shutting down): the same, but
 *   the batch ends with an error and is retried;
 * - `requeue`: the revocation notices restarted since the claim, so some may have been missed:
 *   this row and the rest claimed with it go back to pending and are claimed again first.
 */
export type ClaimDecision = 'send' | 'skip' | 'pass' | 'stop' | 'halt' | 'requeue';

/** Revocation notices as the decision reads them (see `Revocations`). */
export interface RevocationNotices {
  /** Changes whenever listening starts or stops. */
  readonly epoch: number;
  /** A notice for `key` was heard after notice number `mark`. */
  since(key: string, mark: number): boolean;
}

/** The notices that cover a claim: their epoch and the last notice heard before it. */
export interface ClaimWatch {
  readonly notices: RevocationNotices;
  readonly epoch: number;
  readonly mark: number;
}

/**
 * The decision for a row claimed in one round trip. `watch` is null when the claim was made
 * without revocation notices (then the claim's own re-check of the subscription is all there is);
 * `digestKey` is the digest's notice key (`d:<id>`).
 */
export function decideClaim(
  claim: Claim,
  row: { subscriberId: string; subscriptionId: string },
  halting: boolean,
  watch: ClaimWatch | null,
  digestKey: string,
): ClaimDecision {
  if (claim === 'stopped') return 'stop';
  if (claim === 'taken') return 'pass';
  if (claim === 'ineligible') return 'skip';
  if (halting) return 'halt';
  if (watch) {
    const { notices, mark } = watch;
    if (notices.since(digestKey, mark)) return 'stop';
    if (notices.epoch !== watch.epoch) return 'requeue';
    if (notices.since(`n:${row.subscriptionId}`, mark) || notices.since(`s:${row.subscriberId}`, mark)) return 'skip';
  }
  return 'send';
}
