/**
 * Wraps a pooled client's `query` once, when the connection is made, so every statement run on it
 * (through the pool or on a checked-out client) records its text for `inspect()`, its duration for
 * `database_query_duration_seconds`, and its error code for `database_errors_total`.
 */
import type { Clock } from './clock.js';
import type { PooledClient, Slot } from './slot.js';
import type { PoolStats } from './stats.js';
import { withCode } from './transient.js';

type QueryFn = (config: unknown, values?: unknown, callback?: unknown) => unknown;

const RAW_QUERY = Symbol.for('pgwarden.rawQuery');

/** The client's own `query`, bypassing instrumentation (for the pool's housekeeping statements). */
export function rawQuery(client: PooledClient): QueryFn {
  return (client[RAW_QUERY] as QueryFn | undefined) ?? (client.query as QueryFn);
}

export function instrumentClient(slot: Slot, client: PooledClient, stats: PoolStats, clock: Clock): void {
  const original = client.query as QueryFn | undefined;
  if (typeof original !== 'function' || client[RAW_QUERY]) return;
  Object.defineProperty(client, RAW_QUERY, { value: original, enumerable: false });

  const record = (start: number, error: unknown) => {
    const end = clock.now();
    stats.queryDuration.observe((end - start) / 1000);
    if (error) stats.countError(withCode(error), end);
  };

  client.query = function instrumentedQuery(
    this: unknown,
    config: unknown,
    values?: unknown,
    callback?: unknown,
  ) {
    const text = typeof config === 'string' ? config : (config as { text?: unknown } | null)?.text;
    if (typeof text === 'string') slot.lastQuery = text;
    // Submittables (cursors, streams) manage their own completion: pass them through untouched.
    if (
      config === null ||
      config === undefined ||
      typeof (config as { submit?: unknown }).submit === 'function'
    ) {
      return original.call(client, config, values, callback);
    }
    const start = clock.now();
    if (typeof values === 'function') {
      const cb = values as (err: unknown, res: unknown) => void;
      return original.call(client, config, (err: unknown, res: unknown) => {
        record(start, err);
        cb(err, res);
      });
    }
    if (typeof callback === 'function') {
      const cb = callback as (err: unknown, res: unknown) => void;
      return original.call(client, config, values, (err: unknown, res: unknown) => {
        record(start, err);
        cb(err, res);
      });
    }
    const result = original.call(client, config, values) as Promise<unknown> | undefined;
    if (!result || typeof result.then !== 'function') return result;
    return result.then(
      (res) => {
        record(start, undefined);
        return res;
      },
      (err) => {
        record(start, err);
        throw err;
      },
    );
  };
}
