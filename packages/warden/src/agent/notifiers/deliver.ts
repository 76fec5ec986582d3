/**
 * Delivery with retries: one notification to one notifier, retried on transient failures (no
 * answer, 5xx, 429) with exponential backoff and jitter, never on other 4xx. A `Retry-After` is
 * honoured: the next attempt waits at least that long. Every attempt is reported through `onAttempt`
 * (the incident store logs them on the timeline).
 *
 * Time goes through a Clock (or an injected `sleep`), so tests run the waits on a FakeClock.
 */
import { type Clock, systemClock } from '@pgwarden/pool';
import type { Notification } from '../types.js';
import type { DeliveryResult, Notifier } from './types.js';

export interface DeliveryAttempt {
  /** 1, 2, 3 … */
  attempt: number;
  /** When the attempt started (clock ms). */
  at: number;
  result: DeliveryResult;
  /** How long deliver() waits before the next attempt; absent when this attempt was the last. */
  nextDelayMillis?: number;
}

export interface DeliverOptions {
  /** Default 5. */
  maxAttempts?: number;
  /** Backoff before the second attempt; doubles each time. Default 500. */
  initialDelayMillis?: number;
  /** Backoff cap (a Retry-After may ask for longer). Default 30 000. */
  maxDelayMillis?: number;
  /**
   * A Retry-After longer than this is not waited for: deliver() gives up and returns that result
   * (whose retryAfterMillis tells the caller when to try again). Default 300 000.
   */
  maxRetryAfterMillis?: number;
  /** Time source for `at` and, unless `sleep` is given, for the waits. Default the system clock. */
  clock?: Clock;
  /** Replaces the clock's timers for the waits; should reject or resolve early when `signal` aborts. */
  sleep?: (millis: number, signal?: AbortSignal) => Promise<void>;
  /** For the jitter, in [0, 1). Default Math.random. */
  random?: () => number;
  /** Called after every attempt. An exception thrown here is ignored (it must not stop delivery). */
  onAttempt?: (attempt: DeliveryAttempt) => void;
  /** Stops retrying (and aborts the attempt in flight). */
  signal?: AbortSignal;
}

/** Whether a failed result is worth another attempt. */
export function isRetryable(result: DeliveryResult): boolean {
  if (result.ok) return false;
  if (result.retryable !== undefined) return result.retryable;
  if (result.status === undefined) return true; // no answer: network error, timeout
  return result.status === 429 || result.status >= 500;
}

/**
 * Backoff before attempt `attempt + 1`: initial · 2^(attempt-1), capped, with "equal jitter" (half
 * fixed, half random) so retries from many notifiers spread out without collapsing to zero.
 */
export function backoffMillis(
  attempt: number,
  initialDelayMillis: number,
  maxDelayMillis: number,
  random: () => number,
): number {
  const exp = Math.min(maxDelayMillis, initialDelayMillis * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

function clockSleep(clock: Clock, millis: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clock.clearTimeout(handle);
      resolve();
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, millis);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`deliver: ${name} must be a number >= 0`);
  return value;
}

/** Sends `notification` through `notifier`, retrying as described above. Resolves with the last result. */
export async function deliver(
  notifier: Notifier,
  notification: Notification,
  options: DeliverOptions = {},
): Promise<DeliveryResult> {
  const maxAttempts = Math.max(1, Math.floor(positive(options.maxAttempts, 5, 'maxAttempts')));
  const initial = positive(options.initialDelayMillis, 500, 'initialDelayMillis');
  const maxDelay = positive(options.maxDelayMillis, 30_000, 'maxDelayMillis');
  const maxRetryAfter = positive(options.maxRetryAfterMillis, 300_000, 'maxRetryAfterMillis');
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? ((ms: number, signal?: AbortSignal) => clockSleep(clock, ms, signal));
  const { signal } = options;

  let result: DeliveryResult = { ok: false, error: `${notifier.kind}: aborted`, retryable: false };
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (signal?.aborted) return result;
    const at = clock.now();
    try {
      result = await notifier.send(notification, signal);
    } catch (err) {
      // Notifiers resolve; a custom one that throws is treated as a network-style failure.
      result = { ok: false, error: `${notifier.kind}: ${err instanceof Error ? err.message : String(err)}` };
    }
    let next: number | undefined;
    if (attempt < maxAttempts && isRetryable(result) && !signal?.aborted) {
      const backoff = backoffMillis(attempt, initial, maxDelay, random);
      const asked = result.retryAfterMillis;
      if (asked === undefined) next = backoff;
      else if (asked <= maxRetryAfter) next = Math.max(asked, backoff);
    }
    const report: DeliveryAttempt = { attempt, at, result };
    if (next !== undefined) report.nextDelayMillis = next;
    try {
      options.onAttempt?.(report);
    } catch {
      // A failing logger must not stop the page from going out.
    }
    if (next === undefined) return result;
    await sleep(next, signal);
  }
  return result;
}
