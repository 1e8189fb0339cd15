import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import Handlebars from 'handlebars';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APP_CONFIG, type AppConfig } from '../../../../libs/config/src/config.js';
import { TEMPLATES_DIR } from '../../../../libs/core/src/paths.js';

/** Reader-facing HTML pages: Handlebars (escaped) inside one shared layout, compiled once. */
@Injectable()
export class PagesService implements OnModuleInit {
  private layout!: Handlebars.TemplateDelegate;
  private readonly pages = new Map<string, Handlebars.TemplateDelegate>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  async onModuleInit(): Promise<void> {
    const dir = join(TEMPLATES_DIR, 'pages');
    for (const file of await readdir(dir)) {
      if (!file.endsWith('.hbs')) continue;
      const tpl = Handlebars.compile(await readFile(join(dir, file), 'utf8'));
      if (file === 'layout.hbs') this.layout = tpl;
      else this.pages.set(file.slice(0, -4), tpl);
    }
  }

  render(page: string, title: string, vars: Record<string, unknown> = {}): string {
    const tpl = this.pages.get(page);
    if (!tpl) throw new Error(`Unknown page ${page}`);
    const common = {
      publicUrl: this.config.publicUrl,
      postalAddress: this.config.postalAddress,
      brand: 'Spine-health',
    };
    const body = tpl({ ...common, ...vars });
    return this.layout({ ...common, title, body });
  }
}
