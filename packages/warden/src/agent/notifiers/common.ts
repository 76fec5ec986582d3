/**
 * Helpers the HTTP notifiers share: one POST with a timeout and an abort signal, turned into a
 * DeliveryResult whose error text has every secret removed; Retry-After parsing; the words used for
 * notification events in every channel.
 */
import { createHash } from 'node:crypto';
import type { Notification } from '../types.js';
import type { DeliveryResult } from './types.js';

export const DEFAULT_TIMEOUT_MILLIS = 10_000;
const REDACTED = '[redacted]';
/** How much of an error response body goes into the error text. */
const BODY_SNIPPET_CHARS = 200;
/** How much of a response body is read at all. */
const BODY_READ_LIMIT = 16 * 1024;

/**
 * Removes every secret (and its URL-encoded and base64 forms) from `text`. Secrets shorter than 4
 * characters are ignored: removing them would mangle ordinary words and they protect nothing.
 */
export function redact(text: string, secrets: readonly string[]): string {
  const forms = new Set<string>();
  for (const s of secrets) {
    if (typeof s !== 'string' || s.length < 4) continue;
    forms.add(s);
    forms.add(encodeURIComponent(s));
    forms.add(Buffer.from(s, 'utf8').toString('base64'));
  }
  let out = text;
  for (const form of [...forms].sort((a, b) => b.length - a.length)) {
    if (form.length >= 4) out = out.split(form).join(REDACTED);
  }
  return out;
}

/** The parts of a URL that can carry a credential: userinfo, the path segments, query values, fragment. */
export function urlSecrets(url: string, { path }: { path: boolean }): string[] {
  const out = [url];
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return out;
  }
  out.push(u.href);
  if (u.username) out.push(decodeURIComponent(u.username));
  if (u.password) out.push(decodeURIComponent(u.password));
  if (u.search.length > 1) out.push(u.search.slice(1));
  for (const value of u.searchParams.values()) out.push(value);
  if (u.hash.length > 1) out.push(u.hash.slice(1));
  if (path && u.pathname.length > 1) {
    out.push(u.pathname);
    for (const segment of u.pathname.split('/')) if (segment.length >= 4) out.push(segment);
  }
  return out;
}

/** `scheme://host[:port]` plus, optionally, the path: what may be shown of a URL. */
export function safeTarget(url: string, { path }: { path: boolean }): string {
  try {
    const u = new URL(url);
    if (!path) return u.pathname.length > 1 ? `${u.origin}/${REDACTED}` : u.origin;
    return `${u.origin}${u.pathname}`;
  } catch {
    return REDACTED;
  }
}

/**
 * `Retry-After` as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). Undefined when
 * absent or unreadable; never negative.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMillis = Date.now(),
): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMillis);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g;

/** Printable, one line, at most `max` characters: for quoting a response body in an error. */
export function snippet(text: string, max = BODY_SNIPPET_CHARS): string {
  const one = text.replace(UNPRINTABLE, ' ').replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

export interface PostOptions {
  /** Name used in error texts ("Slack", "PagerDuty", "webhook"). */
  service: string;
  timeoutMillis: number;
  signal?: AbortSignal;
  /** Removed from every error text. */
  secrets: readonly string[];
  /** For an HTTP-date Retry-After. */
  now?: () => number;
}

/** Reads at most BODY_READ_LIMIT bytes of a response body, then drops the rest. */
async function readSome(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < BODY_READ_LIMIT) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).subarray(0, BODY_READ_LIMIT).toString('utf8');
}

/** A network failure as text: undici hides the cause ("fetch failed"), so its code and message are used. */
function describeFetchError(err: unknown): string {
  const e = err as { message?: unknown; cause?: unknown; code?: unknown };
  const cause = e?.cause as { code?: unknown; message?: unknown; errors?: unknown } | undefined;
  if (cause && typeof cause === 'object') {
    const parts: string[] = [];
    if (typeof cause.code === 'string') parts.push(cause.code);
    if (typeof cause.message === 'string' && cause.message) parts.push(cause.message);
    else if (Array.isArray(cause.errors)) {
      for (const inner of cause.errors) {
        const m = (inner as { message?: unknown })?.message;
        if (typeof m === 'string' && m) parts.push(m);
      }
    }
    if (parts.length) return [...new Set(parts)].join(': ');
  }
  if (typeof e?.code === 'string' && typeof e.message === 'string') return `${e.code}: ${e.message}`;
  return typeof e?.message === 'string' && e.message ? e.message : String(err);
}

export interface PostReply extends DeliveryResult {
  /** The start of the response body (only for successful replies). */
  body?: string;
}

/**
 * One POST of a JSON body. Redirects are not followed (a redirect would replay a signed body or a
 * routing key to another address): a 3xx is a permanent failure. Resolves, never rejects.
 */
export async function postJson(
  url: string,
  body: string,
  headers: Record<string, string>,
  opts: PostOptions,
): Promise<PostReply> {
  const fail = (result: DeliveryResult): PostReply => ({
    ...result,
    error: redact(result.error ?? 'failed', opts.secrets),
  });
  if (opts.signal?.aborted) return fail({ ok: false, error: `${opts.service}: aborted`, retryable: false });
  const timeout = AbortSignal.timeout(opts.timeoutMillis);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'pgwarden', ...headers },
      body,
      signal,
      redirect: 'manual',
    });
    const text = await readSome(res).catch(() => '');
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, body: text };
    const quoted = snippet(text);
    const result: DeliveryResult = {
      ok: false,
      status: res.status,
      error: `${opts.service} answered HTTP ${res.status}${quoted ? `: ${quoted}` : ''}`,
    };
    if (res.status === 429 || res.status === 503) {
      const after = parseRetryAfter(res.headers.get('retry-after'), opts.now?.() ?? Date.now());
      if (after !== undefined) result.retryAfterMillis = after;
    }
    if (res.status >= 300 && res.status < 400) {
      result.retryable = false;
      result.error = `${opts.service} answered with a redirect (HTTP ${res.status}), which is not followed: check the URL`;
    }
    return fail(result);
  } catch (err) {
    if (opts.signal?.aborted) return fail({ ok: false, error: `${opts.service}: aborted`, retryable: false });
    if (timeout.aborted) {
      return fail({ ok: false, error: `${opts.service}: no answer within ${opts.timeoutMillis} ms` });
    }
    return fail({ ok: false, error: `${opts.service}: request failed: ${describeFetchError(err)}` });
  }
}

/** Converts a throw from code that should not throw into a result, secrets removed. */
export function thrownResult(service: string, err: unknown, secrets: readonly string[]): DeliveryResult {
  const message = err instanceof Error ? err.message : String(err);
  return { ok: false, error: redact(`${service}: ${message}`, secrets) };
}

// ---------------------------------------------------------------------------------------------
// Words shared by the channels

export const EVENT_TYPES = {
  opened: 'pgwarden.incident.opened',
  escalated: 'pgwarden.incident.escalated',
  acknowledged: 'pgwarden.incident.acknowledged',
  resolved: 'pgwarden.incident.resolved',
} as const satisfies Record<Notification['event'], string>;

/** The incident's state after this notification's event. */
export function stateOf(n: Notification): 'open' | 'acknowledged' | 'resolved' {
  return n.event === 'resolved' ? 'resolved' : n.event === 'acknowledged' ? 'acknowledged' : 'open';
}

/** "Escalated to level 2: ", "Resolved: ", … ("" for opened): goes before the title. */
export function eventPrefix(n: Notification): string {
  switch (n.event) {
    case 'opened':
      return '';
    case 'escalated':
      return `Escalated to level ${n.level}: `;
    case 'acknowledged':
      return 'Acknowledged: ';
    case 'resolved':
      return 'Resolved: ';
  }
}

/** ISO-8601, or the raw number when `at` is not a valid time. */
export function isoTime(at: number): string {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? String(at) : d.toISOString();
}

/** Only http(s) links are ever shown or linked. */
export function httpUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A message id that is the same every time this notification is sent (so a receiver can drop
 * duplicates of a retried message) and different for any other notification.
 */
export function messageId(n: Notification, prefix = 'msg_'): string {
  const identity = JSON.stringify([n.dedupKey, n.incidentId, n.event, n.level, n.at]);
  return prefix + createHash('sha256').update(identity).digest('base64url').slice(0, 32);
}
