/**
 * PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/overview/).
 * opened and escalated → `trigger` (a repeat trigger with the same dedup_key updates the alert),
 * acknowledged → `acknowledge`, resolved → `resolve`; all three carry the notification's dedupKey,
 * so one incident is one PagerDuty alert. `payload` is sent with triggers only.
 * The routing key is a credential: it never appears in an error.
 */
import type { Notification } from '../types.js';
import { DEFAULT_TIMEOUT_MILLIS, httpUrl, isoTime, postJson, safeTarget, thrownResult } from './common.js';
import type { DeliveryResult, Notifier } from './types.js';

export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

export interface PagerDutyEvent {
  routing_key: string;
  event_action: 'trigger' | 'acknowledge' | 'resolve';
  dedup_key: string;
  payload?: {
    summary: string;
    source: string;
    severity: 'critical' | 'warning';
    timestamp: string;
    component: string;
    custom_details: Record<string, unknown>;
  };
  client?: string;
  client_url?: string;
}

function actionOf(n: Notification): PagerDutyEvent['event_action'] {
  switch (n.event) {
    case 'opened':
    case 'escalated':
      return 'trigger';
    case 'acknowledged':
      return 'acknowledge';
    case 'resolved':
      return 'resolve';
  }
}

/** The event body for a notification. */
export function pagerDutyEvent(n: Notification, routingKey: string): PagerDutyEvent {
  const event: PagerDutyEvent = { routing_key: routingKey, event_action: actionOf(n), dedup_key: n.dedupKey };
  if (event.event_action === 'trigger') {
    const summary = n.title || n.summary;
    event.payload = {
      // PagerDuty truncates at 1024 characters; cut ourselves so the end is marked.
      summary: summary.length > 1024 ? `${summary.slice(0, 1023)}…` : summary,
      source: `pgwarden/${n.database}`,
      severity: n.severity === 'critical' ? 'critical' : 'warning',
      timestamp: isoTime(n.at),
      component: n.database,
      custom_details: {
        incident_id: n.incidentId,
        database: n.database,
        event: n.event,
        level: n.level,
        summary: n.summary,
        ...(n.url ? { url: n.url } : {}),
      },
    };
    const link = httpUrl(n.url);
    event.client = 'pgwarden';
    if (link) event.client_url = link;
  }
  return event;
}

export interface PagerDutyNotifierOptions {
  id: string;
  /** The integration's routing key (a secret). */
  routingKey: string;
  /** Default https://events.pagerduty.com/v2/enqueue. */
  url?: string;
  timeoutMillis?: number;
}

export class PagerDutyNotifier implements Notifier {
  readonly id: string;
  readonly kind = 'pagerduty' as const;
  readonly target: string;
  readonly #url: string;
  readonly #routingKey: string;
  readonly #timeoutMillis: number;

  constructor(options: PagerDutyNotifierOptions) {
    this.id = options.id;
    this.#url = options.url ?? PAGERDUTY_EVENTS_URL;
    this.#routingKey = options.routingKey;
    this.target = safeTarget(this.#url, { path: true });
    this.#timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS;
  }

  async send(n: Notification, signal?: AbortSignal): Promise<DeliveryResult> {
    const secrets = [this.#routingKey];
    try {
      const { body: _, ...result } = await postJson(
        this.#url,
        JSON.stringify(pagerDutyEvent(n, this.#routingKey)),
        {},
        { service: 'PagerDuty', timeoutMillis: this.#timeoutMillis, signal, secrets },
      );
      return result;
    } catch (err) {
      return thrownResult('PagerDuty', err, secrets);
    }
  }
}
