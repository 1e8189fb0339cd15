import { Body, Controller, Get, HttpStatus, Post, Query, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ArticlesService, type ArticleView } from '#digests/articles.service.js';
import { ApiKeyGuard } from '../admin/api-key.guard.js';
import { UpsertArticleDto } from './dto/article.dto.js';

@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/articles')
export class ArticlesController {
  constructor(private readonly articles: ArticlesService) {}

  /** Upsert by url (the CMS webhook and the API are this one route): 201 when new, 200 when updated. */
  @Post()
  async upsert(@Body() dto: UpsertArticleDto, @Res() reply: FastifyReply): Promise<void> {
    const { created, article } = await this.articles.upsert(dto);
    await reply.status(created ? HttpStatus.CREATED : HttpStatus.OK).send(article);
  }

  @Get()
  @ApiQuery({ name: 'newsletter', required: false })
  @ApiQuery({ name: 'limit', required: false, description: '1–200, default 20' })
  list(@Query('newsletter') newsletter?: string, @Query('limit') limit?: string): Promise<ArticleView[]> {
    const n = limit === undefined ? 20 : Number(limit);
    return this.articles.list(newsletter, Number.isInteger(n) ? Math.min(Math.max(n, 1), 200) : 20);
  }
}
