import { LRUCache } from 'lru-cache';
import { expiry } from '../english.js';
import { errorMessage, GatewayError, tlsFailure } from '../errors.js';
import { scrubSecrets } from '../observability/redact.js';
import type { AccessToken, Audience, Credential } from './credential.js';

/**
 * Never send a token with this much or less left: Azure Databricks rejects tokens that expire in
 * 30 s or less, and the Go SDK refreshes 40 s before expiry (databricks-sdk-go config/azure.go).
 */
export const EXPIRY_CUTOFF_MS = 40_000;
/** Start refreshing at most this long before the cutoff (Go SDK's async refresh: min(TTL/2, 20 min)). */
export const MAX_REFRESH_AHEAD_MS = 20 * 60_000;
/** First retry after a failed background refresh (Azure core's tokenCycler retries every 3 s). */
export const REFRESH_RETRY_BASE_MS = 3_000;
/** Backoff ceiling (the Go SDK waits 1 min after a failed async refresh). */
export const REFRESH_RETRY_MAX_MS = 60_000;
/** A token source that hangs must not hang requests: az and databricks CLIs usually answer in 1-3 s. */
export const TOKEN_FETCH_TIMEOUT_MS = 30_000;
/**
 * After a 401 dropped a token, a 401 to its replacement drops it only this long after the last drop,
 * doubling per consecutive drop: an upstream that answers 401 to everything must not cost one token
 * fetch (for azure-cli, one `az` process) per request. 5 s still lets a client's retry succeed soon.
 */
export const REJECT_BACKOFF_BASE_MS = 5_000;
/**
 * Backoff ceiling, and how long without a 401 ends a streak: a hostile upstream costs at most about
 * one fetch per 5 min, and a token revoked long after the last 401 is replaced at once.
 */
export const REJECT_BACKOFF_MAX_MS = 5 * 60_000;

export interface CachedToken extends AccessToken {
  /** When the gateway obtained it (wall clock); the usable lifetime runs from here. */
  obtainedAtMs: number;
  /** Set when the upstream answered 401 to it: never hand it out again. */
  rejected?: boolean;
}

export interface TokenStatus {
  token?: CachedToken;
  lastError?: string;
  failures: number;
  /** After a failed fetch: when a background retry is due (wall clock); 0 when none is. */
  retryAtMs: number;
  /** Tokens dropped after a 401 in the current streak. */
  rejections: number;
}

export interface TokenCacheEvents {
  onFetch?(credential: Credential, audience: Audience): void;
  onFetchFailure?(credential: Credential, audience: Audience, err: unknown): void;
  /** A fetch succeeded; `replaced` when it took the place of an earlier token (a refresh). */
  onToken?(credential: Credential, audience: Audience, token: CachedToken, replaced: boolean): void;
}

export interface TokenCacheOptions extends TokenCacheEvents {
  /** Wall clock; injectable so tests can move time (and so a laptop resumed from sleep is handled). */
  now?: () => number;
  fetchTimeoutMs?: number;
  /** First retry delay after a failed fetch, doubling per failure (REFRESH_RETRY_BASE_MS). */
  retryBaseMs?: number;
  /** Backoff ceiling (REFRESH_RETRY_MAX_MS). */
  retryMaxMs?: number;
}

interface FetchContext {
  credential: Credential;
  audience: Audience;
}

interface RejectionStreak {
  drops: number;
  lastDropMs: number;
  lastRejectionMs: number;
}

interface EntryHealth {
  failures: number;
  retryAtMs: number;
  lastError?: string;
}

/** The last moment a token may be sent. */
export function cutoffMs(token: AccessToken): number {
  return token.expiresOnMs - EXPIRY_CUTOFF_MS;
}

/** When to start a background refresh: the usable time left drops below min(usable lifetime / 2, 20 min). */
export function refreshAtMs(token: CachedToken): number {
  const cutoff = cutoffMs(token);
  const usableLifetime = cutoff - token.obtainedAtMs;
  return cutoff - Math.min(usableLifetime / 2, MAX_REFRESH_AHEAD_MS);
}

/** How long after the last drop a 401 may drop the next token. */
function rejectBackoffMs(drops: number): number {
  return Math.min(REJECT_BACKOFF_BASE_MS * 2 ** (drops - 1), REJECT_BACKOFF_MAX_MS);
}

/** A streak ends once no 401 arrived for the backoff ceiling. */
function activeStreak(streak: RejectionStreak | undefined, now: number): RejectionStreak | undefined {
  return streak && now - streak.lastRejectionMs <= REJECT_BACKOFF_MAX_MS ? streak : undefined;
}

function isUsable(token: CachedToken, now: number): boolean {
  return !token.rejected && now < cutoffMs(token);
}

/**
 * Single-flight, refresh-ahead token cache (design after Azure core's tokenCycler: refresh in the
 * background when due, block only when no usable token is left). lru-cache's fetch() gives the
 * single flight: concurrent callers on a cold or expiring entry share one in-flight fetch.
 * Expiry is always checked against the wall clock at use, never a monotonic timer, so a laptop
 * resumed from sleep never sends a dead token.
 */
export class TokenCache {
  readonly #now: () => number;
  readonly #fetchTimeoutMs: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #events: TokenCacheEvents;
  readonly #health = new Map<string, EntryHealth>();
  readonly #rejections = new Map<string, RejectionStreak>();
  readonly #lru: LRUCache<string, CachedToken, FetchContext>;

  constructor(options: TokenCacheOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? TOKEN_FETCH_TIMEOUT_MS;
    this.#retryBaseMs = options.retryBaseMs ?? REFRESH_RETRY_BASE_MS;
    this.#retryMaxMs = options.retryMaxMs ?? REFRESH_RETRY_MAX_MS;
    this.#events = options;
    this.#lru = new LRUCache<string, CachedToken, FetchContext>({
      // Keys are credential identities x audiences from the config: a few dozen at most.
      max: 1024,
      // A failed refresh must not throw away a token that is still usable.
      noDeleteOnFetchRejection: true,
      fetchMethod: (key, stale, { context, signal }) => this.#fetchToken(key, context, signal, stale !== undefined),
    });
  }

  /** A token usable right now, or GATEWAY_TOKEN_UNAVAILABLE; starts a background refresh when due. */
  async get(credential: Credential, audience: Audience): Promise<CachedToken> {
    const key = cacheKey(credential, audience);
    const now = this.#now();
    const cached = this.#lru.peek(key, { allowStale: true });
    if (cached && isUsable(cached, now)) {
      const health = this.#health.get(key);
      if (now >= refreshAtMs(cached) && now >= (health?.retryAtMs ?? 0)) {
        this.#fetch(key, credential, audience, true).catch(() => {
          // Recorded in health; the current token stays in use until its cutoff.
        });
      }
      return cached;
    }
    try {
      const fresh = await this.#fetch(key, credential, audience, cached !== undefined);
      if (!isUsable(fresh, this.#now())) {
        const left = fresh.expiresOnMs - this.#now();
        // An already expired token is most often this machine's clock running ahead.
        throw new Error(
          `it returned a token that ${expiry(left)}, ${left < 0 ? "so it cannot be used: is this machine's clock right?" : 'too close to expiry to use'}`,
        );
      }
      return fresh;
    } catch (err) {
      throw tokenUnavailable(credential, err);
    }
  }

  /**
   * The cached token when it is usable and not yet due for a refresh: the common case, read
   * without a promise (the hot path of every proxied request). Undefined means: call get().
   */
  peekFresh(credential: Credential, audience: Audience): CachedToken | undefined {
    const cached = this.#lru.peek(cacheKey(credential, audience), { allowStale: true });
    if (!cached) return undefined;
    const now = this.#now();
    return isUsable(cached, now) && now < refreshAtMs(cached) ? cached : undefined;
  }

  /**
   * The upstream rejected this token (401): drop it so the next request fetches a new one, unless
   * its predecessor was dropped within the backoff. True when the token is dropped (a replay gets a
   * fresh one); false when it stays in use.
   */
  reject(credential: Credential, audience: Audience, token: string): boolean {
    const key = cacheKey(credential, audience);
    const cached = this.#lru.peek(key, { allowStale: true });
    // A 401 to an older token says nothing about the current one.
    if (cached?.token !== token) return false;
    const now = this.#now();
    const streak = activeStreak(this.#rejections.get(key), now);
    if (streak) streak.lastRejectionMs = now;
    // Concurrent 401s to one token are one rejection: their replays share the one fetch.
    if (cached.rejected) return true;
    if (streak && now - streak.lastDropMs < rejectBackoffMs(streak.drops)) return false;
    this.#rejections.set(key, { drops: (streak?.drops ?? 0) + 1, lastDropMs: now, lastRejectionMs: now });
    cached.rejected = true;
    return true;
  }

  status(credential: Credential, audience: Audience): TokenStatus {
    const key = cacheKey(credential, audience);
    const token = this.#lru.peek(key, { allowStale: true });
    const health = this.#health.get(key);
    return {
      ...(token && !token.rejected ? { token } : {}),
      ...(health?.lastError !== undefined ? { lastError: health.lastError } : {}),
      failures: health?.failures ?? 0,
      retryAtMs: health?.retryAtMs ?? 0,
      rejections: activeStreak(this.#rejections.get(key), this.#now())?.drops ?? 0,
    };
  }

  #fetch(key: string, credential: Credential, audience: Audience, force: boolean): Promise<CachedToken> {
    // An in-flight fetch for the key is joined whatever forceRefresh says (lru-cache #fetch).
    return this.#lru.fetch(key, { context: { credential, audience }, forceRefresh: force }) as Promise<CachedToken>;
  }

  async #fetchToken(key: string, { credential, audience }: FetchContext, signal: AbortSignal, replacing: boolean): Promise<CachedToken> {
    const obtainedAtMs = this.#now();
    this.#events.onFetch?.(credential, audience);
    try {
      const token = { ...(await withTimeout(credential, audience, signal, this.#fetchTimeoutMs)), obtainedAtMs };
      this.#health.set(key, { failures: 0, retryAtMs: 0 });
      this.#events.onToken?.(credential, audience, token, replacing);
      return token;
    } catch (err) {
      const previous = this.#health.get(key)?.failures ?? 0;
      const backoff = Math.min(this.#retryBaseMs * 2 ** previous, this.#retryMaxMs);
      this.#health.set(key, {
        failures: previous + 1,
        retryAtMs: this.#now() + backoff,
        lastError: scrubSecrets(errorMessage(err)),
      });
      this.#events.onFetchFailure?.(credential, audience, err);
      throw err;
    }
  }
}

function cacheKey(credential: Credential, audience: Audience): string {
  return `${credential.id}\u0000${audience}`;
}

async function withTimeout(credential: Credential, audience: Audience, outer: AbortSignal, timeoutMs: number): Promise<AccessToken> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(outer.reason);
  outer.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`${credential.type} did not answer within ${Math.round(timeoutMs / 1000)} s`);
      controller.abort(err);
      reject(err);
    }, timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([credential.getToken(audience, { signal: controller.signal }), timeout]);
  } finally {
    clearTimeout(timer);
    outer.removeEventListener('abort', onAbort);
  }
}

/** Credentials that run a CLI: its TLS trust is its own (REQUESTS_CA_BUNDLE for az), not the gateway's. */
const RUNS_A_TOOL = new Set(['azure-cli', 'databricks-cli']);

function tokenUnavailable(credential: Credential, err: unknown): GatewayError {
  const detail = scrubSecrets(errorMessage(err)).replace(/\s+/g, ' ').trim();
  // A token endpoint the gateway calls itself (Entra ID, Databricks OAuth) behind TLS inspection:
  // the fix is the gateway's trust, not the credential's settings.
  const tls = RUNS_A_TOOL.has(credential.type) ? undefined : tlsFailure(err);
  const fix = tls ? `${tls.what}; ${tls.fix}` : credential.hint;
  return new GatewayError(
    'GATEWAY_TOKEN_UNAVAILABLE',
    `no usable token from credential ${credential.type}: ${detail}${/[.!?]$/.test(detail) ? '' : '.'} Fix: ${fix}`,
    { cause: err },
  );
}
