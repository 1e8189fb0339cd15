/**
 * The one definition of "this address is suppressed", as SQL for queries that must keep the check
 * inline (SuppressionsRepository runs it on its own; the subscribe functions of migration
 * OutboxAdd1765100000000 carry it inside their statements, so a change here needs a migration
 * that re-creates them).
 */

/**
 * What the check is for:
 * - `mail`: every entry counts (bounced, complained, blocked by hand, erased): no newsletter mail,
 *   no guide, no import.
 * - `opt-in`: an erased address's hash does not count, so it may begin a new double opt-in (and
 *   get its confirmation mail); every other entry does.
 */
export type SuppressionScope = 'mail' | 'opt-in';

/** A boolean SQL expression: true when the address whose keyed hash is `hashSql` is suppressed. */
export function suppressedSql(hashSql: string, scope: SuppressionScope): string {
  const erased = scope === 'opt-in' ? ` AND reason <> 'erased'` : '';
  return `EXISTS (SELECT 1 FROM suppressions WHERE email_hash = ${hashSql}${erased})`;
}
