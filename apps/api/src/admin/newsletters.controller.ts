import { Body, Controller, Get, Param, Patch, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { NewslettersService, type NewsletterView } from '#subscriptions/newsletters.service.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { CreateNewsletterDto, UpdateNewsletterDto } from './dto/newsletter.dto.js';

@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/newsletters')
export class NewslettersController {
  constructor(private readonly newsletters: NewslettersService) {}

  @Get()
  list(): Promise<NewsletterView[]> {
    return this.newsletters.list();
  }

  @Post()
  create(@Body() dto: CreateNewsletterDto): Promise<NewsletterView> {
    return this.newsletters.create(dto);
  }

  @Get(':slug')
  get(@Param('slug') slug: string): Promise<NewsletterView> {
    return this.newsletters.get(slug);
  }

  @Patch(':slug')
  update(@Param('slug') slug: string, @Body() dto: UpdateNewsletterDto): Promise<NewsletterView> {
    return this.newsletters.update(slug, dto);
  }
}
