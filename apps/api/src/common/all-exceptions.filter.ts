import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { ThrottlerException } from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PagesService } from '../pages/pages.service.js';
import { wantsHtml } from './request-context.js';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Errors that Fastify raises before a route runs, in words a client can act on. */
function frameworkMessage(err: { code?: string; message?: string }, status: number): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'Request body is too large (the limit is 100 kB)';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'Unsupported content type: send application/json or an HTML form';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'Request body is empty';
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'Content-Length does not match the body';
    default:
      if (status === 400 && /JSON/i.test(err.message ?? '')) return 'Malformed JSON in request body';
      return status < 500 ? (err.message ?? 'Bad request') : 'Internal server error';
  }
}

/** Every error leaves as a clear message with the right status: never a stack trace, never a 500 for bad input. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  constructor(private readonly pages: PagesService) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const req = ctx.getRequest<FastifyRequest>();
    let status = 500;
    let message: string | string[] = 'Internal server error';
    if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      // Health checks answer with their own report (terminus): pass it through as it is.
      if (typeof body === 'object' && body !== null && 'status' in body && 'details' in body) {
        void reply.status(status).send(body);
        return;
      }
      message =
        typeof body === 'string' ? body : ((body as { message?: string | string[] }).message ?? exception.message);
      // The public throttler's own words name no wait; other 429s say theirs.
      if (exception instanceof ThrottlerException) message = 'Too many requests: please wait a minute and try again';
      // Body-parser failures that the adapter already turned into HTTP errors: say it plainly.
      if (status === 413) message = frameworkMessage({ code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, 413);
      if (status === 400 && typeof message === 'string' && /JSON/.test(message))
        message = 'Malformed JSON in request body';
    } else if (exception && typeof exception === 'object' && 'statusCode' in exception) {
      const e = exception as { statusCode: number; code?: string; message?: string };
      status = e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500;
      message = frameworkMessage(e, status);
    }
    if (status >= 500) {
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    }
    const error = STATUS_TEXT[status] ?? 'Error';
    if (reply.sent) return;
    if (wantsHtml(req)) {
      const messages = Array.isArray(message) ? message : [message];
      void reply
        .status(status)
        .headers(this.pages.headers())
        .type('text/html; charset=utf-8')
        .send(
          this.pages.render('error', error, { heading: status === 400 ? 'Please check the form' : error, messages }),
        );
      return;
    }
    void reply.status(status).type('application/json; charset=utf-8').send({ statusCode: status, error, message });
  }
}
