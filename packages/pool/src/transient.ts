/**
 * Which failures may be retried. A connection attempt that failed before anything was sent is safe
 * to try again; a statement is only retried when its caller said it is idempotent.
 */
import { errorCode } from './stats.js';

/** SQLSTATEs and Node errors that mean "the server could not take a connection right now". */
const TRANSIENT_CONNECT = new Set([
  '53300', // too_many_connections
  '57P03', // cannot_connect_now (starting up, shutting down, recovery)
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'PGWARDEN_CONNECT_TIMEOUT',
  'PGWARDEN_CONNECTION_LOST',
]);

export function isTransientConnectError(error: unknown): boolean {
  const code = errorCode(error);
  if (TRANSIENT_CONNECT.has(code)) return true;
  if (code === '08007') return false;
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated unexpectedly|the database system is (starting up|shutting down)/i.test(
    message,
  );
}

/** Failures that say nothing about the server's health (bad password, missing database) do not trip the breaker. */
export function countsAgainstBreaker(error: unknown): boolean {
  return isTransientConnectError(error);
}

/**
 * The connection died under a statement (it may or may not have run): retry only idempotent work.
 * 57P01 is admin_shutdown, what pg_terminate_backend produces.
 */
export function isConnectionLostError(error: unknown): boolean {
  const code = errorCode(error);
  if (code === '08007') return false;
  if (
    code.startsWith('08') ||
    code === 'PGWARDEN_CONNECTION_LOST' ||
    code === '57P01' ||
    code === '57P02' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE'
  ) {
    return true;
  }
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|not queryable|Client has encountered a connection error/i.test(message);
}

/**
 * Codes for the failures node-postgres reports as plain errors without one (its client-side query
 * timeout, a connection that ended without a server message, its own connect timeout).
 */
export type ClientErrorCode =
  | 'PGWARDEN_QUERY_TIMEOUT'
  | 'PGWARDEN_CONNECTION_LOST'
  | 'PGWARDEN_CONNECT_TIMEOUT';

const CODELESS: [RegExp, ClientErrorCode][] = [
  [/^Query read timeout/, 'PGWARDEN_QUERY_TIMEOUT'],
  [/^Connection terminated due to connection timeout/, 'PGWARDEN_CONNECT_TIMEOUT'],
  [
    /^Connection terminated|not queryable|Client has encountered a connection error|^Client was closed/,
    'PGWARDEN_CONNECTION_LOST',
  ],
];

/**
 * Gives an error that node-postgres raised without a `code` a stable one (in place: the message,
 * stack and identity are kept), so every error a pool caller sees can be branched on by its code.
 * Errors that have a code, and errors the pool does not recognise, are left as they are.
 */
export function withCode<T>(error: T): T {
  if (!(error instanceof Error)) return error;
  const e = error as Error & { code?: unknown };
  if (typeof e.code === 'string' && e.code !== '') return error;
  const found = CODELESS.find(([pattern]) => pattern.test(e.message));
  if (found) {
    try {
      e.code = found[1];
    } catch {
      // a frozen error keeps what it has
    }
  }
  return error;
}
