import { LRUCache } from 'lru-cache';
import { plural } from '../english.js';
import { GatewayError } from '../errors.js';

/**
 * Requests per minute per inbound key (or per client address without keys), as a token bucket:
 * bursts up to the per-minute budget, refilled continuously. Over budget: 429 with Retry-After.
 */
export function createRateLimiter(perMinute: number, now: () => number = Date.now): (who: string) => void {
  // Bounded: without keys the buckets are per client address, which a network listener does not bound.
  const buckets = new LRUCache<string, { tokens: number; at: number }>({ max: 10_000 });
  const perMs = perMinute / 60_000;
  return function take(who) {
    const t = now();
    const bucket = buckets.get(who) ?? { tokens: perMinute, at: t };
    bucket.tokens = Math.min(perMinute, bucket.tokens + (t - bucket.at) * perMs);
    bucket.at = t;
    buckets.set(who, bucket);
    if (bucket.tokens < 1) {
      const retryAfter = Math.ceil((1 - bucket.tokens) / perMs / 1000);
      throw new GatewayError(
        'GATEWAY_RATE_LIMITED',
        `more than ${plural(perMinute, 'request')} per minute from ${who}; retry after ${retryAfter} s (limits.requestsPerMinutePerKey)`,
        {
          headers: { 'retry-after': String(retryAfter) },
        },
      );
    }
    bucket.tokens -= 1;
  };
}
