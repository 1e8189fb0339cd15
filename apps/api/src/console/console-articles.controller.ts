import {
  Body,
  Controller,
  Get,
  NotFoundException,
  Param,
  Post,
  Query,
  Req,
  Res,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ArticlesService, type ArticleView } from '#digests/articles.service.js';
import { FeedError, FeedsService } from '#digests/feeds.service.js';
import { NewslettersService } from '#subscriptions/newsletters.service.js';
import { UpsertArticleDto } from '../articles/dto/article.dto.js';
import { ConsoleExceptionFilter } from './console-exception.filter.js';
import {
  badRequestMessage,
  dtoErrors,
  fields,
  type FormErrors,
  newsletterSlug,
  notice,
  queryString,
  sendPage,
  staffOf,
} from './console-forms.js';
import { field } from './console-http.js';
import { ConsolePagesService } from './console-pages.service.js';
import { StaffGuard } from './staff.guard.js';

const PAGE_SIZE = 25;

const NOTICES: Record<string, string> = {
  created: 'Article added.',
  saved: 'Article saved.',
};

interface ArticleForm {
  url: string;
  title: string;
  summary: string;
  imageUrl: string;
  topics: string;
  publishedAt: string;
  newsletters: string[];
}

/** `2026-11-24T08:00` (a datetime-local input, read as UTC) or a full ISO time → ISO 8601. */
function publishedIso(v: string): string {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v) ? `${v.length === 16 ? `${v}:00` : v}Z` : v;
}

function formOf(a: ArticleView): ArticleForm {
  return {
    url: a.url,
    title: a.title,
    summary: a.summary ?? '',
    imageUrl: a.imageUrl ?? '',
    topics: a.topics.join(', '),
    publishedAt: a.publishedAt.toISOString().slice(0, 16),
    newsletters: a.newsletters,
  };
}

/** Articles: a searchable list, add and edit (the API's upsert), and each newsletter's feed status. */
@ApiExcludeController()
@Controller('admin/articles')
@UseGuards(StaffGuard)
@UseFilters(ConsoleExceptionFilter)
export class ConsoleArticlesController {
  constructor(
    private readonly articles: ArticlesService,
    private readonly feeds: FeedsService,
    private readonly newsletters: NewslettersService,
    private readonly pages: ConsolePagesService,
  ) {}

  @Get()
  async list(
    @Query() query: Record<string, unknown>,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const q = queryString(query.q).slice(0, 200);
    const newsletter = queryString(query.newsletter);
    const page = /^[1-9]\d{0,5}$/.test(queryString(query.page)) ? Number(query.page) : 1;
    const all = await this.newsletters.list();
    const known = all.some((n) => n.slug === newsletter) ? newsletter : '';
    const { items, total } = await this.articles.search({ q, newsletter: known, page, pageSize: PAGE_SIZE });
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const link = (p: number) => {
      const params = new URLSearchParams();
      if (q) params.set('q', q);
      if (known) params.set('newsletter', known);
      if (p > 1) params.set('page', String(p));
      const s = params.toString();
      return s ? `/admin/articles?${s}` : '/admin/articles';
    };
    const feedKey = queryString(query.feed);
    const feeds = (await this.feeds.status()).map((f) => ({
      ...f,
      justPolled: f.slug === feedKey && queryString(query.polled) !== '',
      polledResult: f.slug === feedKey ? queryString(query.polled) : '',
    }));
    await sendPage(
      reply,
      200,
      this.pages.render(
        'articles',
        { title: 'Articles', staff: staffOf(req), section: 'articles' },
        {
          notice: notice(NOTICES, query.notice),
          items,
          total,
          q,
          filtered: q !== '' || known !== '',
          newsletters: all.map((n) => ({ slug: n.slug, name: n.name, selected: n.slug === known })),
          page,
          pages,
          prev: page > 1 ? link(page - 1) : null,
          next: page < pages ? link(page + 1) : null,
          feeds,
        },
      ),
    );
  }

  @Get('new')
  async newForm(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const def = (await this.newsletters.list()).filter((n) => n.isDefault).map((n) => n.slug);
    await this.formPage(req, reply, 200, null, {
      url: '',
      title: '',
      summary: '',
      imageUrl: '',
      topics: '',
      publishedAt: new Date().toISOString().slice(0, 16),
      newsletters: def,
    });
  }

  @Post()
  async create(@Body() body: unknown, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    await this.upsert(req, reply, body, null);
  }

  @Get(':id')
  async edit(
    @Param('id') id: string,
    @Query('notice') key: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const a = await this.found(id);
    await this.formPage(req, reply, 200, a.id, formOf(a), {}, notice(NOTICES, key));
  }

  @Post(':id')
  async save(
    @Param('id') id: string,
    @Body() body: unknown,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const a = await this.found(id);
    await this.upsert(req, reply, body, a);
  }

  /** Fetches a newsletter's feed now (as POST /v1/newsletters/:slug/feed/poll); the result shows on the list. */
  @Post('feeds/:slug/poll')
  async poll(@Param('slug') raw: string, @Res() reply: FastifyReply): Promise<void> {
    const slug = newsletterSlug(raw);
    let outcome: string;
    try {
      const r = await this.feeds.pollBySlug(slug);
      outcome = r.status === 'not-modified' ? 'not-modified' : `ok-${r.created}-${r.updated}`;
    } catch (err) {
      if (!(err instanceof FeedError)) throw err;
      outcome = 'error';
    }
    await reply.redirect(`/admin/articles?feed=${encodeURIComponent(slug)}&polled=${outcome}#feeds`, 303);
  }

  private async found(id: string): Promise<ArticleView & { id: string }> {
    const a = await this.articles.find(id);
    if (!a) throw new NotFoundException('There is no such article.');
    return a;
  }

  private async upsert(
    req: FastifyRequest,
    reply: FastifyReply,
    body: unknown,
    existing: (ArticleView & { id: string }) | null,
  ): Promise<void> {
    const form: ArticleForm = {
      // An article is keyed by its URL: editing one keeps it.
      url: existing ? existing.url : field(body, 'url').trim(),
      title: field(body, 'title').trim(),
      summary: field(body, 'summary').trim(),
      imageUrl: field(body, 'imageUrl').trim(),
      topics: field(body, 'topics'),
      publishedAt: field(body, 'publishedAt').trim(),
      newsletters: fields(body, 'newsletters'),
    };
    const topics = form.topics
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t.length > 0);
    const input = {
      url: form.url,
      title: form.title,
      summary: form.summary || undefined,
      imageUrl: form.imageUrl || undefined,
      topics,
      publishedAt: publishedIso(form.publishedAt),
      newsletters: form.newsletters,
    };
    const errors = await dtoErrors(UpsertArticleDto, input);
    if (Object.keys(errors).length === 0) {
      try {
        const { article } = await this.articles.upsert(input);
        const id = existing?.id ?? (await this.articles.idByUrl(article.url));
        await reply.redirect(`/admin/articles/${id}?notice=${existing ? 'saved' : 'created'}`, 303);
        return;
      } catch (err) {
        const message = badRequestMessage(err);
        if (message === null) throw err;
        if (/^newsletters/.test(message)) errors.newsletters = message;
        else errors.form = message;
      }
    }
    await this.formPage(req, reply, 400, existing?.id ?? null, form, errors);
  }

  private async formPage(
    req: FastifyRequest,
    reply: FastifyReply,
    status: number,
    id: string | null,
    values: ArticleForm,
    errors: FormErrors = {},
    noticeText?: string,
  ): Promise<void> {
    const all = await this.newsletters.list();
    await sendPage(
      reply,
      status,
      this.pages.render(
        'article',
        { title: id ? values.title || 'Edit article' : 'Add an article', staff: staffOf(req), section: 'articles' },
        {
          id,
          values,
          errors,
          hasErrors: Object.keys(errors).length > 0,
          notice: noticeText,
          newsletters: all.map((n) => ({ slug: n.slug, name: n.name, checked: values.newsletters.includes(n.slug) })),
        },
      ),
    );
  }
}
