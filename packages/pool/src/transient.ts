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
