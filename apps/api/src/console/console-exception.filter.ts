import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { wantsJson } from '../common/request-context.js';
import { exceptionMessage, sendPage } from './console-forms.js';
import { ConsolePagesService } from './console-pages.service.js';
import { ConsoleRedirect } from './console-http.js';

const HEADINGS: Record<number, string> = {
  400: 'Please check the request',
  401: 'Please sign in',
  403: 'You do not have access to this page',
  404: 'Page not found',
  405: 'Method not allowed',
  413: 'Request too large',
  429: 'Too many requests',
  500: 'Something went wrong',
};

/**
 * Errors on console routes: redirects to sign-in, and 403/404/… as console pages (JSON for
 * clients that ask for it), never the reader's page layout and never a stack trace.
 */
@Catch()
export class ConsoleExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Console');

  constructor(private readonly pages: ConsolePagesService) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const req = host.switchToHttp().getRequest<FastifyRequest>();
    if (reply.sent) return;
    if (exception instanceof ConsoleRedirect) {
      void reply.redirect(exception.location, exception.getStatus());
      return;
    }
    let status = 500;
    let message = 'The console could not complete this request. Try again; if it keeps failing, check the api log.';
    if (exception instanceof HttpException) {
      status = exception.getStatus();
      message = exceptionMessage(exception);
      if (status === 404 && /^Cannot (GET|POST|PUT|PATCH|DELETE|HEAD)/.test(message))
        message = 'There is no console page at this address.';
    } else if (exception && typeof exception === 'object' && 'statusCode' in exception) {
      const code = Number((exception as { statusCode: unknown }).statusCode);
      if (code >= 400 && code < 500) {
        status = code;
        message = status === 413 ? 'The form is too large.' : 'The request could not be read.';
      }
    }
    if (status >= 500) {
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    }
    const heading = HEADINGS[status] ?? 'Error';
    if (wantsJson(req)) {
      void reply
        .status(status)
        .type('application/json; charset=utf-8')
        .send({ statusCode: status, error: heading, message });
      return;
    }
    void sendPage(
      reply,
      status,
      this.pages.render('error', { title: heading, staff: req.staff }, { heading, message, status }),
    );
  }
}
