import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The console's staff accounts and their sessions. E-mail addresses are stored lower-cased (a
 * CHECK holds it), so a plain UNIQUE makes them unique case-insensitively without the citext
 * extension. Only the SHA-256 of a session token is stored; failed sign-ins are kept for the
 * rate limit window.
 */
export class Staff1764500000000 implements MigrationInterface {
  name = 'Staff1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE staff_users (
        id serial PRIMARY KEY,
        email text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
        password_hash text NOT NULL,
        role text NOT NULL CHECK (role IN ('admin','marketer')),
        created_at timestamptz NOT NULL DEFAULT now(),
        password_changed_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE staff_sessions (
        id bigserial PRIMARY KEY,
        token_hash bytea NOT NULL UNIQUE,
        user_id int NOT NULL REFERENCES staff_users(id) ON DELETE CASCADE,
        csrf_secret text NOT NULL,
        ip inet,
        user_agent text,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX staff_sessions_user ON staff_sessions (user_id);
      CREATE INDEX staff_sessions_expires ON staff_sessions (expires_at);
      CREATE TABLE staff_login_failures (
        id bigserial PRIMARY KEY,
        email text NOT NULL,
        ip inet,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX staff_login_failures_email ON staff_login_failures (email, created_at);
      CREATE INDEX staff_login_failures_ip ON staff_login_failures (ip, created_at);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE staff_login_failures; DROP TABLE staff_sessions; DROP TABLE staff_users;`);
  }
}
