/**
 * `pool.query()`: pg-pool's semantics (acquire, run, release with the error), plus retry of
 * statements their caller marked idempotent, and, with `pipeline: true`, sharing of busy
 * connections through pg's pipeline mode when the pool is at its limit.
 */
import type pg from 'pg';
import { isConnectionLostError, withCode } from './transient.js';
import { captureSite } from './site.js';
import type { Pool } from './pool.js';
import type { Slot } from './slot.js';

export type QueryCallback = (err: Error | undefined, res?: pg.QueryResult) => void;

/** Statements that change session or transaction state must keep a connection to themselves. */
const SESSION_STATEMENT =
  /^\s*(begin|start|commit|end|rollback|abort|savepoint|release|prepare|set|reset|lock|declare|fetch|close|move|listen|unlisten|notify|copy|discard|do|call|vacuum)\b/i;

/** Functions whose effect outlives the statement (session locks and settings). */
const SESSION_FUNCTION =
  /\b(pg_advisory_lock|pg_try_advisory_lock|pg_advisory_lock_shared|pg_try_advisory_lock_shared|set_config|pg_advisory_unlock)/i;

/** Whether a statement may share a pipelined connection with others. */
export function isShareable(config: unknown, values: unknown): boolean {
  let text: unknown = config;
  if (typeof config === 'object' && config !== null) {
    const c = config as {
      text?: unknown;
      submit?: unknown;
      rows?: unknown;
      name?: unknown;
      values?: unknown;
    };
    if (typeof c.submit === 'function' || c.rows !== undefined) return false;
    text = c.text;
  }
  if (typeof text !== 'string' || SESSION_STATEMENT.test(text) || SESSION_FUNCTION.test(text)) return false;
  const semicolon = text.indexOf(';');
  if (semicolon !== -1 && text.slice(semicolon + 1).trim() !== '') return false;
  return values === undefined || Array.isArray(values);
}

function isIdempotent(config: unknown): boolean {
  return (
    typeof config === 'object' && config !== null && (config as { idempotent?: unknown }).idempotent === true
  );
}

export function runPoolQuery(
  pool: Pool,
  text: unknown,
  values: unknown,
  callback: QueryCallback | undefined,
  // biome-ignore lint/complexity/noBannedTypes: V8's captureStackTrace takes any function as the frame boundary
  boundary: Function,
): Promise<pg.QueryResult> | undefined {
  if (typeof text === 'function') {
    const cb = text as QueryCallback;
    setImmediate(() =>
      cb(new Error('Passing a function as the first parameter to pool.query is not supported')),
    );
    return undefined;
  }
  let cb = callback;
  let args = values;
  if (typeof values === 'function') {
    cb = values as QueryCallback;
    args = undefined;
  }
  let result: Promise<pg.QueryResult> | undefined;
  if (!cb) {
    result = new pool.Promise<pg.QueryResult>((resolve, reject) => {
      cb = (err, res) => (err ? reject(err) : resolve(res as pg.QueryResult));
    });
  }
  const done = cb as QueryCallback;
  const now = pool._clock.now();
  const site = pool._sampler.shouldCapture(now) ? captureSite(boundary) : undefined;
  const settings = pool._settings;
  const attempts = isIdempotent(text) && settings.retry ? settings.retry.maxAttempts : 1;
  const shared = settings.pipeline && isShareable(text, args);

  const run = (attempt: number) => {
    const finish: QueryCallback = (err, res) => {
      if (err) withCode(err);
      if (err && attempt < attempts && isConnectionLostError(err) && !pool.ending) {
        pool.log('retrying idempotent statement after a lost connection', err);
        run(attempt + 1);
        return;
      }
      done(err, res);
    };
    if (shared) runShared(pool, now, site, text, args, finish);
    else runExclusive(pool, now, site, text, args, finish);
  };
  run(1);
  return result;
}

function runExclusive(
  pool: Pool,
  now: number,
  site: ReturnType<typeof captureSite> | undefined,
  text: unknown,
  values: unknown,
  done: QueryCallback,
): void {
  pool._acquire(now, site, false, (err, slot) => {
    if (err || !slot) {
      done(err);
      return;
    }
    const client = slot.client;
    let released = false;
    // Exactly once, whichever comes first: the statement's answer, a client error, or a throw.
    const finish = (error: Error | undefined, res?: pg.QueryResult) => {
      client.removeListener('error', finish);
      if (released) return;
      released = true;
      client.release(error);
      done(error, error ? undefined : res);
    };
    client.once('error', finish);
    pool.log('dispatching query');
    try {
      client.query(text, values, (error: Error | null | undefined, res: pg.QueryResult) => {
        pool.log('query dispatched');
        finish(error ?? undefined, res);
      });
    } catch (error) {
      finish(error as Error);
    }
  });
}

function runShared(
  pool: Pool,
  now: number,
  site: ReturnType<typeof captureSite> | undefined,
  text: unknown,
  values: unknown,
  done: QueryCallback,
): void {
  const ridden = pool._pickShared();
  if (ridden) {
    send(pool, ridden, text, values, done);
    return;
  }
  pool._acquire(now, site, true, (err, slot) => {
    if (err || !slot) done(err);
    else send(pool, slot, text, values, done);
  });
}

/** Runs one statement on a shared connection whose `inFlight` already counts it. */
function send(pool: Pool, slot: Slot, text: unknown, values: unknown, done: QueryCallback): void {
  const client = slot.client;
  let finished = false;
  const complete = (error: Error | undefined, res?: pg.QueryResult) => {
    if (finished) return;
    finished = true;
    // A statement error is that statement's alone in pipeline mode; a lost connection is everyone's.
    if (error && isConnectionLostError(error)) slot.broken = true;
    pool._sharedStatementDone(slot);
    done(error ?? undefined, error ? undefined : res);
  };
  try {
    client.query(text, values, complete);
  } catch (error) {
    complete(error as Error);
  }
}
