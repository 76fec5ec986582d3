/**
 * Slack incoming webhook: Block Kit (a header with the severity emoji, the summary, the database /
 * incident / level / state fields, a context line) and a plain `text` fallback for notifications.
 *
 * Everything that came from the database (titles and summaries quote names and query text) is
 * escaped for mrkdwn (& < >), so `<!channel>` or `<https://evil|click>` in a query arrives as text.
 * The webhook URL is a credential: its path never appears in `target` or in an error.
 * Slack allows about one message a second per webhook and answers 429 with Retry-After (seconds),
 * which is returned as `retryAfterMillis` for deliver() to honour.
 */
import type { Notification } from '../types.js';
import {
  DEFAULT_TIMEOUT_MILLIS,
  eventPrefix,
  httpUrl,
  isoTime,
  postJson,
  safeTarget,
  stateOf,
  thrownResult,
  urlSecrets,
} from './common.js';
import type { DeliveryResult, Notifier } from './types.js';

/** Escapes the three characters Slack's mrkdwn gives meaning to. */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Escapes, then cuts so that the escaped text is at most `max` characters without splitting an entity. */
function escapedWithin(text: string, max: number): string {
  let out = '';
  for (const ch of text) {
    const e = escapeSlack(ch);
    if (out.length + e.length > max - 1) return `${out}…`;
    out += e;
  }
  return out;
}

const EMOJI = { critical: ':rotating_light:', warning: ':warning:' } as const;

function emojiOf(n: Notification): string {
  if (n.event === 'resolved') return ':white_check_mark:';
  return EMOJI[n.severity] ?? ':warning:';
}

export interface SlackMessage {
  text: string;
  blocks: unknown[];
}

/** The message body posted to the webhook. */
export function slackMessage(n: Notification): SlackMessage {
  const severity = n.severity.toUpperCase();
  const emoji = emojiOf(n);
  const headline = `${eventPrefix(n)}${n.title}`;
  const seconds = Math.floor(n.at / 1000);
  const when = Number.isFinite(seconds)
    ? `<!date^${seconds}^{date_short_pretty} {time_secs}|${isoTime(n.at)}>`
    : escapeSlack(String(n.at));
  const link = httpUrl(n.url);
  const context = [`pgwarden`, `${n.event}`, when];
  // In <url|label> a "|" or ">" in the URL would end it early.
  if (link) context.push(`<${escapeSlack(link).replace(/\|/g, '%7C')}|Open incident>`);
  const blocks = [
    {
      type: 'header',
      // Header text is plain_text, at most 150 characters.
      text: {
        type: 'plain_text',
        text: `${emoji} ${severity}: ${escapedWithin(headline, 150 - emoji.length - severity.length - 3)}`,
        emoji: true,
      },
    },
    {
      type: 'section',
      text: { type: 'mrkdwn', text: escapedWithin(n.summary || n.title, 3000) },
      fields: [
        { type: 'mrkdwn', text: `*Database*\n${escapedWithin(n.database, 1900)}` },
        { type: 'mrkdwn', text: `*Incident*\n${escapedWithin(n.incidentId, 1900)}` },
        { type: 'mrkdwn', text: `*Level*\n${n.level}` },
        { type: 'mrkdwn', text: `*State*\n${stateOf(n)}` },
      ],
    },
    { type: 'context', elements: [{ type: 'mrkdwn', text: context.join(' · ') }] },
  ];
  const text = escapedWithin(
    `[${severity}] ${headline} (database ${n.database}, incident ${n.incidentId})`,
    3000,
  );
  return { text: `${emoji} ${text}`, blocks };
}

export interface SlackNotifierOptions {
  id: string;
  /** https://hooks.slack.com/services/T…/B…/… (a secret). */
  url: string;
  timeoutMillis?: number;
}

export class SlackNotifier implements Notifier {
  readonly id: string;
  readonly kind = 'slack' as const;
  readonly target: string;
  readonly #url: string;
  readonly #secrets: string[];
  readonly #timeoutMillis: number;

  constructor(options: SlackNotifierOptions) {
    this.id = options.id;
    this.#url = options.url;
    this.#secrets = urlSecrets(options.url, { path: true });
    this.target = safeTarget(options.url, { path: false });
    this.#timeoutMillis = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS;
  }

  async send(n: Notification, signal?: AbortSignal): Promise<DeliveryResult> {
    try {
      const { body: _, ...result } = await postJson(
        this.#url,
        JSON.stringify(slackMessage(n)),
        {},
        {
          service: 'Slack',
          timeoutMillis: this.#timeoutMillis,
          signal,
          secrets: this.#secrets,
        },
      );
      return result;
    } catch (err) {
      return thrownResult('Slack', err, this.#secrets);
    }
  }
}
