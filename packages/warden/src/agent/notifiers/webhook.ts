/**
 * Generic webhook: POSTs the notification as JSON with a `type` ("pgwarden.incident.opened", …),
 * signed the Standard Webhooks way (https://www.standardwebhooks.com):
 *
 *   webhook-id:        msg_…   (the same for every retry of one notification)
 *   webhook-timestamp: seconds since the epoch, of this attempt
 *   webhook-signature: v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">
 *
 * The secret is either `whsec_<base64>` (the standard form: the HMAC key is the decoded bytes) or any
 * other string (the key is its UTF-8 bytes).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type Clock, systemClock } from '@pgwarden/pool';
import type { Notification } from '../types.js';
import {
  DEFAULT_TIMEOUT_MILLIS,
  EVENT_TYPES,
  messageId,
  postJson,
  safeTarget,
  thrownResult,
  urlSecrets,
} from './common.js';
import type { DeliveryResult, Notifier } from './types.js';

const WHSEC_PREFIX = 'whsec_';

/** The HMAC key for a secret: `whsec_<base64>` decoded, anything else as UTF-8. Throws on bad base64. */
export function webhookSecretKey(secret: string): Buffer {
  if (secret.startsWith(WHSEC_PREFIX)) {
    const b64 = secret.slice(WHSEC_PREFIX.length);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 === 1) {
      throw new Error('the whsec_ secret is not valid base64');
    }
    const key = Buffer.from(b64, 'base64');
    if (key.length === 0) throw new Error('the whsec_ secret is empty');
    return key;
  }
  if (secret.length === 0) throw new Error('the secret is empty');
  return Buffer.from(secret, 'utf8');
}

/** `v1,<base64 HMAC-SHA256("<id>.<timestamp>.<body>")>`. */
export function signStandardWebhook(
  id: string,
  timestampSeconds: number,
  body: string | Uint8Array,
  secret: string | Uint8Array,
): string {
  const key = typeof secret === 'string' ? webhookSecretKey(secret) : secret;
  const hmac = createHmac('sha256', key);
  hmac.update(`${id}.${timestampSeconds}.`);
  hmac.update(body);
  return `v1,${hmac.digest('base64')}`;
}

/** Node's `req.headers`, a fetch `Headers`, or any name → value map (names compared case-insensitively). */
export type HeaderSource =
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const map = headers as Record<string, string | string[] | undefined>;
  for (const key of Object.keys(map)) {
    if (key.toLowerCase() !== name) continue;
    const v = map[key];
    return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

export interface VerifyOptions {
  /** Reject timestamps further than this from `now` (replay protection). Default 300; Infinity to skip. */
  toleranceSeconds?: number;
  /** Epoch ms to compare the timestamp with. Default Date.now(). */
  now?: number;
}

/**
 * Checks a Standard Webhooks signature: true when one of the `v1,` signatures in `webhook-signature`
 * is the HMAC of `<webhook-id>.<webhook-timestamp>.<body>` under `secret` and the timestamp is within
 * the tolerance. `body` must be the raw bytes received (not re-serialised JSON). Never throws.
 */
export function verifyStandardWebhook(
  headers: HeaderSource,
  body: string | Uint8Array,
  secret: string,
  options: VerifyOptions = {},
): boolean {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp)) return false;
  const tolerance = options.toleranceSeconds ?? 300;
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(nowSeconds - Number(timestamp)) > tolerance) return false;
  let expected: Buffer;
  try {
    expected = Buffer.from(signStandardWebhook(id, Number(timestamp), body, secret).slice(3), 'base64');
  } catch {
    return false;
  }
  let ok = false;
  for (const sig of signatures.split(' ')) {
    const [version, value] = sig.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const given = Buffer.from(value, 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true;
  }
  return ok;
}

export interface WebhookNotifierOptions {
  id: string;
  url: string;
  secret: string;
  timeoutMillis?: number;
  /** For `webhook-timestamp`. Default the system clock. */
  clock?: Clock;
}

/** The JSON body: the notification plus its event type. */
export function webhookBody(n: Notification): string {
  return JSON.stringify({ type: EVENT_TYPES[n.event], ...n });
}

export class WebhookNotifier implements Notifier {
  readonly id: string;
  readonly kind = 'webhook' as const;
  readonly target: string;
  readonly #url: string;
  readonly #key: Buffer;
  readonly #secrets: string[];
  readonly #timeoutMillis: number;
  readonly #clock: Clock;

  constructor(options: WebhookNotifierOptions) {
    this.id = options.id;
    this.#url = options.url;
    this.#key = webhookSecretKey(options.secret);
    // Webhook URLs often carry tokens too (in the path, the query or userinfo): shown as origin only.
    this.#secrets = [options.secret, ...urlSecrets(options.url, { path: true })];
    this.target = safeTarget(options.url, { path: false });
    this.#timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS;
    this.#clock = options.clock ?? systemClock;
  }

  async send(n: Notification, signal?: AbortSignal): Promise<DeliveryResult> {
    try {
      const body = webhookBody(n);
      const id = messageId(n);
      const timestamp = Math.floor(this.#clock.now() / 1000);
      return await postJson(
        this.#url,
        body,
        {
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signStandardWebhook(id, timestamp, body, this.#key),
        },
        { service: 'webhook', timeoutMillis: this.#timeoutMillis, signal, secrets: this.#secrets },
      ).then(({ body: _, ...result }) => result);
    } catch (err) {
      return thrownResult('webhook', err, this.#secrets);
    }
  }
}
