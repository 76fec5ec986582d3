/**
 * The pool's own counters and histograms. They are always kept (they feed `inspect()`), cost a few
 * nanoseconds per event, allocate nothing on the hot path, and are read by the metrics layer at
 * scrape time.
 */

export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  /** `bounds` are the upper bounds of the buckets, ascending; +Inf is implicit. */
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (value <= (bounds[mid] as number)) hi = mid;
      else lo = mid + 1;
    }
    (this.counts as Float64Array)[lo] = (this.counts[lo] as number) + 1;
    this.sum += value;
    this.count++;
  }

  /** Cumulative counts per bound, as Prometheus exposes them; the last entry is +Inf. */
  cumulative(): number[] {
    const out: number[] = [];
    let running = 0;
    for (const c of this.counts) {
      running += c;
      out.push(running);
    }
    return out;
  }

  /** Estimated quantile (linear within the bucket), in the histogram's unit. */
  quantile(q: number): number | undefined {
    if (this.count === 0) return undefined;
    const rank = q * this.count;
    let running = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i] as number;
      if (running + c >= rank && c > 0) {
        const lower = i === 0 ? 0 : (this.bounds[i - 1] as number);
        const upper = i < this.bounds.length ? (this.bounds[i] as number) : lower;
        return lower + (upper - lower) * ((rank - running) / c);
      }
      running += c;
    }
    return this.bounds[this.bounds.length - 1];
  }
}

export const WAIT_BUCKETS_SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
export const QUERY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type CloseReason =
  | 'idle_timeout'
  | 'lifetime'
  | 'max_uses'
  | 'overflow'
  | 'error'
  | 'broken'
  | 'validation_failed'
  | 'resize'
  | 'pool_ended'
  | 'released_with_error'
  | 'leak_reclaimed';

export interface RecentError {
  at: string;
  code: string;
  message: string;
}

const RECENT_ERRORS = 20;

export class PoolStats {
  readonly waitTime = new Histogram(WAIT_BUCKETS_SECONDS);
  readonly queryDuration = new Histogram(QUERY_BUCKETS_SECONDS);
  acquired = 0;
  created = 0;
  connectFailures = 0;
  timeouts = 0;
  queueFull = 0;
  leaks = 0;
  /** Leaked checkouts whose connection died and whose slot the pool took back. */
  leaksReclaimed = 0;
  readonly closed = new Map<CloseReason, number>();
  readonly errors = new Map<string, number>();
  readonly recentErrors: RecentError[] = [];

  countClose(reason: CloseReason): void {
    this.closed.set(reason, (this.closed.get(reason) ?? 0) + 1);
  }

  /** Counts an error under its SQLSTATE or Node code, and keeps the last few for `inspect()`. */
  countError(error: unknown, now: number): void {
    const code = errorCode(error);
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    const message = error instanceof Error ? error.message : String(error);
    this.recentErrors.push({ at: new Date(now).toISOString(), code, message: message.slice(0, 300) });
    if (this.recentErrors.length > RECENT_ERRORS) this.recentErrors.shift();
  }
}

/** A stable label for an error: SQLSTATE, Node's code, or the error's name. */
export function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.length > 0) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name !== 'Error') return name;
  }
  return 'unknown';
}
