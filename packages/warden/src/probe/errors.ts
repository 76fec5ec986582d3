/**
 * Why a probe could not connect, as a stable code and one line a person can act on. Messages never
 * contain the password: it is removed from anything that came from the driver or the server.
 */
export type ProbeErrorCode =
  | 'bad_url'
  | 'unreachable'
  | 'auth'
  | 'too_many_connections'
  | 'database_missing'
  | 'not_postgres'
  | 'timeout'
  | 'starting'
  | 'connection_lost'
  | 'permission';

export class ProbeError extends Error {
  readonly code: ProbeErrorCode;
  /** What to do about it (printed under the one-line message). */
  readonly hint: string | undefined;

  constructor(code: ProbeErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProbeError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isProbeError(error: unknown): error is ProbeError {
  return error instanceof ProbeError;
}

/** The reserved-slot role set-up that lets pgwarden in while ordinary roles get 53300. */
export const RESERVED_SLOT_HINT = [
  'Give pgwarden a role that may use the reserved slots, so it gets in while the server is full:',
  "  CREATE ROLE pgwarden LOGIN PASSWORD '...';",
  '  GRANT pg_monitor, pg_signal_backend TO pgwarden;',
  '  GRANT pg_use_reserved_connections TO pgwarden;   -- PostgreSQL 16+, with reserved_connections > 0',
  '  ALTER SYSTEM SET reserved_connections = 3;        -- PostgreSQL 16+ (restart needed)',
  'Before 16 only superusers may use superuser_reserved_connections. Better still, run `pgwarden watch`:',
  'the agent holds its connection from the start, so a full server cannot lock it out.',
].join('\n');

function hostOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port ? `:${u.port}` : ':5432'}`;
  } catch {
    return 'the server';
  }
}

function passwordOf(url: string): string | undefined {
  try {
    const p = decodeURIComponent(new URL(url).password);
    return p.length > 0 ? p : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the URL's password (raw and decoded) from a message. */
export function redact(message: string, url: string): string {
  let out = message;
  const decoded = passwordOf(url);
  let raw: string | undefined;
  try {
    raw = new URL(url).password || undefined;
  } catch {
    raw = undefined;
  }
  for (const secret of [decoded, raw]) {
    if (secret && secret.length > 0) out = out.split(secret).join('***');
  }
  return out;
}

/** Turns a connect failure into a ProbeError with a clear message. */
export function classifyConnectError(error: unknown, url: string): ProbeError {
  const err = error as { code?: string; message?: string };
  const code = err?.code ?? '';
  const message = redact(err?.message ?? String(error), url);
  const host = hostOf(url);
  switch (code) {
    case 'ECONNREFUSED':
      return new ProbeError(
        'unreachable',
        `cannot reach ${host}: connection refused (is PostgreSQL running there?)`,
        {
          cause: error,
        },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ProbeError('unreachable', `cannot resolve the host of ${host}`, { cause: error });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return new ProbeError('unreachable', `cannot reach ${host}: ${code}`, { cause: error });
    case '28P01':
    case '28000':
      return new ProbeError('auth', `authentication failed at ${host}: ${message}`, { cause: error });
    case '53300':
      return new ProbeError(
        'too_many_connections',
        `${host} refused the connection: too many clients (SQLSTATE 53300); the server is full`,
        {
          hint: RESERVED_SLOT_HINT,
          cause: error,
        },
      );
    case '3D000':
      return new ProbeError('database_missing', `${message} at ${host}`, { cause: error });
    case '57P03':
      return new ProbeError('starting', `${host} is not accepting connections yet: ${message}`, {
        cause: error,
      });
    case '42501':
      return new ProbeError('permission', `${message} at ${host}`, { cause: error });
    default:
      break;
  }
  if (/timeout/i.test(message)) {
    return new ProbeError('timeout', `no answer from ${host} in time: is it PostgreSQL, and reachable?`, {
      cause: error,
    });
  }
  if (
    /terminated unexpectedly|unexpected|protocol|invalid|ECONNRESET|not a PostgreSQL/i.test(
      `${message} ${code}`,
    )
  ) {
    return new ProbeError('not_postgres', `${host} did not answer like a PostgreSQL server (${message})`, {
      cause: error,
    });
  }
  return new ProbeError('unreachable', `cannot connect to ${host}: ${message}`, { cause: error });
}
