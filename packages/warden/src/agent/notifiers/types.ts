/**
 * What every notifier implements, and what one delivery attempt reports back. `deliver()` (deliver.ts)
 * retries on top of `send()`; a notifier itself makes exactly one attempt per call and never throws.
 */
import type { Notification } from '../types.js';

export type NotifierKind = 'webhook' | 'slack' | 'email' | 'pagerduty' | 'stdout';

export interface DeliveryResult {
  ok: boolean;
  /** HTTP status (webhook, Slack, PagerDuty) or SMTP reply code (email), when there was a reply. */
  status?: number;
  /** How long the receiver asked us to wait before trying again (429 / 503 `Retry-After`). */
  retryAfterMillis?: number;
  /** What went wrong, for logs. Never contains a secret (URL path of Slack, webhook secret, keys, passwords). */
  error?: string;
  /**
   * Overrides deliver()'s decision by status, when the notifier knows better: false for permanent
   * failures (SMTP 5xx, authentication refused, a redirect, an aborted send), true for transient ones.
   */
  retryable?: boolean;
}

export interface Notifier {
  id: string;
  kind: NotifierKind;
  /** Where it sends to, safe to show and log (no secret: Slack's path is redacted, no query strings). */
  target?: string;
  /** One attempt. Resolves (never rejects) with the outcome. */
  send(n: Notification, signal?: AbortSignal): Promise<DeliveryResult>;
}

export type { Notification };
