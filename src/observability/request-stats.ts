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
}

const RECENT_ERRORS = 20;

export class RequestStats {
  readonly #byRoute = new Map<string, { requests: number; errors: number }>();
  readonly #recent: RecentError[] = [];

  record(route: string, method: string, path: string, status: number, error: string | undefined): void {
    const counts = this.#byRoute.get(route) ?? { requests: 0, errors: 0 };
    counts.requests++;
    const failed = status >= 500 || status === 0 || error !== undefined || status === 401 || status === 403 || status === 429;
    if (failed) {
      counts.errors++;
      this.#recent.unshift({ at: new Date().toISOString(), route, method, path, status, ...(error ? { error } : {}) });
      this.#recent.length = Math.min(this.#recent.length, RECENT_ERRORS);
    }
    this.#byRoute.set(route, counts);
  }

  counts(route: string): { requests: number; errors: number } {
    return this.#byRoute.get(route) ?? { requests: 0, errors: 0 };
  }

  recentErrors(): readonly RecentError[] {
    return this.#recent;
  }
}
