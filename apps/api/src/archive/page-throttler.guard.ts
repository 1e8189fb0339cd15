import { Injectable } from '@nestjs/common';
import { ThrottlerGuard, type ThrottlerRequest } from '@nestjs/throttler';

/** Public pages allow this many times the public POST limit per client IP and route. */
export const PAGE_LIMIT_FACTOR = 10;

/**
 * The rate limit of public pages (the archive, an issue's web version, the feed): readers behind
 * one address (a company's NAT, a mail gateway opening "View in your browser") read far more
 * than they sign up, so a page allows PAGE_LIMIT_FACTOR times `PUBLIC_POSTS_PER_IP_PER_MINUTE`.
 */
@Injectable()
export class PageThrottlerGuard extends ThrottlerGuard {
  protected override handleRequest(props: ThrottlerRequest): Promise<boolean> {
    return super.handleRequest({ ...props, limit: props.limit * PAGE_LIMIT_FACTOR });
  }
}
