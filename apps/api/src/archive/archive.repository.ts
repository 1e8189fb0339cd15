import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { rows } from '#db/sql.js';

/** A newsletter whose archive is public (`archive` true). */
export interface ArchivedNewsletter {
  id: number;
  slug: string;
  name: string;
  description: string | null;
  /** The schedule's zone: issue dates are shown in it (UTC when unset). */
  timezone: string | null;
}

/** A sent digest as the archive shows it: nothing about its readers or its send. */
export interface ArchivedIssue {
  id: string;
  /** The subject the readers got (variant 0's), else the editor's. */
  subject: string | null;
  preheader: string | null;
  /** The editor's Markdown intro, as written. */
  intro: string | null;
  /** When it went out: the start of its send. */
  sentAt: Date;
  /** Its article titles in the issue's order (the list and the feed describe an issue by them). */
  titles: string[];
}

export interface ArchivedArticle {
  url: string;
  title: string;
  summary: string | null;
  imageUrl: string | null;
  topics: string[];
}

/** Issue columns shared by the list, the feed and the web version (`d` is the digest). */
const ISSUE_COLUMNS = `d.id::text AS id, COALESCE(d.subject, d.subject_given) AS subject, d.preheader, d.intro,
  COALESCE(d.started_at, d.send_at) AS "sentAt",
  ARRAY(SELECT a.title FROM digest_articles da JOIN articles a ON a.id = da.article_id
        WHERE da.digest_id = d.id ORDER BY da.position) AS titles`;

/** Reads for the public archive: only sent digests of newsletters whose archive is on. */
@Injectable()
export class ArchiveRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  /** The newsletter by slug, or null when it is unknown or its archive is off. */
  async newsletter(slug: string): Promise<ArchivedNewsletter | null> {
    const found = await rows<ArchivedNewsletter>(
      this.ds,
      `SELECT id, slug, name, description, schedule_timezone AS timezone FROM newsletters WHERE slug = $1 AND archive`,
      [slug],
    );
    return found[0] ?? null;
  }

  async countSent(newsletterId: number): Promise<number> {
    const [{ n }] = await rows<{ n: number }>(
      this.ds,
      `SELECT count(*)::int AS n FROM digests WHERE newsletter_id = $1 AND status = 'sent'`,
      [newsletterId],
    );
    return n;
  }

  /** Sent issues, newest first (ties by id), `limit` from `offset`. */
  async sentIssues(newsletterId: number, limit: number, offset: number): Promise<ArchivedIssue[]> {
    return rows<ArchivedIssue>(
      this.ds,
      `SELECT ${ISSUE_COLUMNS} FROM digests d WHERE d.newsletter_id = $1 AND d.status = 'sent'
       ORDER BY COALESCE(d.started_at, d.send_at) DESC, d.id DESC LIMIT $2 OFFSET $3`,
      [newsletterId, limit, offset],
    );
  }

  /**
   * One issue of this newsletter that went out: sent, or still sending (a local digest's readers
   * open its "View in your browser" link while later waves wait). Null for another newsletter's,
   * one not sent (yet) or an unknown one.
   */
  async sentIssue(newsletterId: number, id: string): Promise<ArchivedIssue | null> {
    const found = await rows<ArchivedIssue>(
      this.ds,
      `SELECT ${ISSUE_COLUMNS} FROM digests d
       WHERE d.newsletter_id = $1 AND d.id = $2::bigint AND d.status IN ('sending', 'sent')`,
      [newsletterId, id],
    );
    return found[0] ?? null;
  }

  /**
   * The issue's articles in its own order (`digest_articles.position`): the issue as it is, which
   * is variant 0 of a digest with topic variants.
   */
  async articles(digestId: string): Promise<ArchivedArticle[]> {
    return rows<ArchivedArticle>(
      this.ds,
      `SELECT a.url, a.title, a.summary, a.image_url AS "imageUrl", a.topics
       FROM digest_articles da JOIN articles a ON a.id = da.article_id WHERE da.digest_id = $1 ORDER BY da.position`,
      [digestId],
    );
  }
}
