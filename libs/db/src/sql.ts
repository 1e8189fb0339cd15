import type { DataSource, EntityManager } from 'typeorm';

/**
 * Rows of any statement. TypeORM's `query()` hands back `[rows, affected]` for UPDATE and DELETE
 * on PostgreSQL, and the rows alone otherwise; this evens them out.
 */
export async function rows<T>(db: EntityManager | DataSource, sql: string, params: unknown[] = []): Promise<T[]> {
  const result: unknown = await db.query(sql, params);
  if (Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') {
    return result[0] as T[];
  }
  return result as T[];
}
