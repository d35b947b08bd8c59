/** What the status page shows besides tokens: request counts per route and the latest errors. */
export interface RecentError {
  /** ISO time the response closed. */
  at: string;
  route: string;
  method: string;
  /** Upstream path (no query string). */
  path: string;
  status: number;
  error?: string;
  /** Why, in the gateway's words (what the client was told, or the upstream's scrubbed text). */
  reason?: string;
}

/** The last failure to reach a route's upstream, until an exchange with it succeeds again. */
export interface UpstreamProblem {
  /** ISO time of the failure. */
  at: string;
  reason: string;
}

const RECENT_ERRORS = 20;
/** The error codes that mean the upstream could not be reached at all (refused, reset, TLS, DNS). */
const UNREACHABLE = new Set(['GATEWAY_UPSTREAM_UNREACHABLE']);

export class RequestStats {
  readonly #byRoute = new Map<string, { requests: number; errors: number }>();
  readonly #recent: RecentError[] = [];
  readonly #upstream = new Map<string, UpstreamProblem>();

  record(route: string, method: string, path: string, status: number, error: string | undefined, reason?: string): void {
    const counts = this.#byRoute.get(route) ?? { requests: 0, errors: 0 };
    counts.requests++;
    const failed = status >= 500 || status === 0 || error !== undefined || status === 401 || status === 403 || status === 429;
    if (failed) {
      counts.errors++;
      this.#recent.unshift({ at: new Date().toISOString(), route, method, path, status, ...(error ? { error } : {}), ...(reason ? { reason } : {}) });
      this.#recent.length = Math.min(this.#recent.length, RECENT_ERRORS);
    }
    this.#byRoute.set(route, counts);
    // An answer with no gateway error came from the upstream: it is reachable again.
    if (error !== undefined && UNREACHABLE.has(error)) this.noteUpstream(route, reason ?? error);
    else if (error === undefined && status > 0) this.#upstream.delete(route);
  }

  /** A failure to reach the route's upstream (or, with undefined, a success), seen outside a request. */
  noteUpstream(route: string, problem: string | undefined): void {
    if (problem === undefined) this.#upstream.delete(route);
    else this.#upstream.set(route, { at: new Date().toISOString(), reason: problem });
  }

  upstreamProblem(route: string): UpstreamProblem | undefined {
    return this.#upstream.get(route);
  }

  counts(route: string): { requests: number; errors: number } {
    return this.#byRoute.get(route) ?? { requests: 0, errors: 0 };
  }

  recentErrors(): readonly RecentError[] {
    return this.#recent;
  }
}
