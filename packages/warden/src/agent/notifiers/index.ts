/**
 * Notifiers: where incident notifications go. `createNotifier(config)` builds one from a plain config
 * object (as read from the agent's YAML), checking every field and naming the bad one in the error
 * (never quoting a secret); `deliver()` sends with retries.
 */
import type { Clock } from '@pgwarden/pool';
import { EmailNotifier, type SmtpOptions } from './email.js';
import { PAGERDUTY_EVENTS_URL, PagerDutyNotifier } from './pagerduty.js';
import { SlackNotifier } from './slack.js';
import { type LineSink, StdoutNotifier } from './stdout.js';
import type { Notifier, NotifierKind } from './types.js';
import { WebhookNotifier, webhookSecretKey } from './webhook.js';

export type { DeliveryResult, Notifier, NotifierKind } from './types.js';
export { deliver, isRetryable, backoffMillis } from './deliver.js';
export type { DeliverOptions, DeliveryAttempt } from './deliver.js';
export {
  WebhookNotifier,
  verifyStandardWebhook,
  signStandardWebhook,
  webhookBody,
  webhookSecretKey,
} from './webhook.js';
export type { HeaderSource, VerifyOptions } from './webhook.js';
export { SlackNotifier, slackMessage, escapeSlack } from './slack.js';
export { EmailNotifier, emailSubject, emailText, emailHtml } from './email.js';
export type { SmtpOptions } from './email.js';
export { PagerDutyNotifier, pagerDutyEvent, PAGERDUTY_EVENTS_URL } from './pagerduty.js';
export type { PagerDutyEvent } from './pagerduty.js';
export { StdoutNotifier, stdoutLine } from './stdout.js';
export type { LineSink } from './stdout.js';
export { EVENT_TYPES, messageId } from './common.js';

interface CommonConfig {
  id: string;
  /** Per attempt (connect + answer). Default 10 000. */
  timeoutMillis?: number;
}
export interface WebhookConfig extends CommonConfig {
  kind: 'webhook';
  url: string;
  /** `whsec_<base64>` or a raw string. */
  secret: string;
}
export interface SlackConfig extends CommonConfig {
  kind: 'slack';
  url: string;
}
/** SMTP settings; credentials as `auth: { user, pass }` or flat `user` + `pass` (or `password`). */
export type SmtpConfig = SmtpOptions & { user?: string; pass?: string; password?: string };
export interface EmailConfig extends CommonConfig {
  kind: 'email';
  smtp: SmtpConfig;
  from: string;
  to: string[];
}
export interface PagerDutyConfig extends CommonConfig {
  kind: 'pagerduty';
  routingKey: string;
  url?: string;
}
export interface StdoutConfig extends CommonConfig {
  kind: 'stdout';
  format?: 'text' | 'json';
}
export type NotifierConfig = WebhookConfig | SlackConfig | EmailConfig | PagerDutyConfig | StdoutConfig;

export interface NotifierDeps {
  /** Timestamps of webhook signatures. Default the system clock. */
  clock?: Clock;
  /** Where `stdout` notifiers write. Default process.stdout. */
  stdout?: LineSink;
}

export const NOTIFIER_KINDS: readonly NotifierKind[] = ['webhook', 'slack', 'email', 'pagerduty', 'stdout'];

class ConfigError extends Error {
  constructor(where: string, field: string, problem: string) {
    super(`${where}: "${field}" ${problem}`);
    this.name = 'NotifierConfigError';
  }
}

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

export function createNotifier(config: NotifierConfig, deps: NotifierDeps = {}): Notifier {
  const raw = config as unknown;
  if (!isObject(raw)) throw new Error('notifier config must be an object');
  const id = raw.id;
  if (typeof id !== 'string' || id.trim() === '' || CONTROL.test(id)) {
    throw new ConfigError('notifier', 'id', 'must be a non-empty string without control characters');
  }
  const where = `notifier "${id}"`;
  const bad = (field: string, problem: string) => new ConfigError(where, field, problem);

  const str = (obj: Raw, field: string, path = field): string => {
    const v = obj[field];
    if (typeof v !== 'string' || v.trim() === '') throw bad(path, 'must be a non-empty string');
    return v;
  };
  // The URL itself is never quoted: Slack's is a credential, others may carry tokens.
  const url = (obj: Raw, field: string): string => {
    const v = str(obj, field);
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw bad(field, 'is not a valid URL');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw bad(field, 'must be an http(s) URL');
    return u.href;
  };
  const timeoutMillis = (() => {
    const v = raw.timeoutMillis;
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw bad('timeoutMillis', 'must be a positive number of milliseconds');
    }
    return v;
  })();
  const common = timeoutMillis === undefined ? { id } : { id, timeoutMillis };

  switch (raw.kind) {
    case 'webhook': {
      const secret = str(raw, 'secret');
      try {
        webhookSecretKey(secret);
      } catch (err) {
        throw bad('secret', `is not usable: ${(err as Error).message}`);
      }
      return new WebhookNotifier({ ...common, url: url(raw, 'url'), secret, clock: deps.clock });
    }
    case 'slack':
      return new SlackNotifier({ ...common, url: url(raw, 'url') });
    case 'pagerduty': {
      const routingKey = str(raw, 'routingKey');
      if (/\s/.test(routingKey)) throw bad('routingKey', 'must not contain whitespace');
      return new PagerDutyNotifier({
        ...common,
        routingKey,
        url: raw.url === undefined ? PAGERDUTY_EVENTS_URL : url(raw, 'url'),
      });
    }
    case 'stdout': {
      const format = raw.format;
      if (format !== undefined && format !== 'text' && format !== 'json') {
        throw bad('format', 'must be "text" or "json"');
      }
      return new StdoutNotifier({ id, format: format ?? 'text', stream: deps.stdout });
    }
    case 'email': {
      const smtp = raw.smtp;
      if (!isObject(smtp)) throw bad('smtp', 'must be an object with host, port, secure, auth');
      const host = str(smtp, 'host', 'smtp.host');
      const options: SmtpOptions = { host };
      if (smtp.port !== undefined) {
        const p = smtp.port;
        if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
          throw bad('smtp.port', 'must be an integer from 1 to 65535');
        }
        options.port = p;
      }
      for (const flag of ['secure', 'requireTLS', 'ignoreTLS', 'rejectUnauthorized'] as const) {
        const v = smtp[flag];
        if (v === undefined) continue;
        if (typeof v !== 'boolean') throw bad(`smtp.${flag}`, 'must be true or false');
        options[flag] = v;
      }
      if (smtp.auth !== undefined) {
        const auth = smtp.auth;
        if (!isObject(auth)) throw bad('smtp.auth', 'must be an object with user and pass');
        const user = str(auth, 'user', 'smtp.auth.user');
        if (typeof auth.pass !== 'string' || auth.pass === '') {
          throw bad('smtp.auth.pass', 'must be a non-empty string');
        }
        options.auth = { user, pass: auth.pass };
      } else if (smtp.user !== undefined || smtp.pass !== undefined || smtp.password !== undefined) {
        const user = str(smtp, 'user', 'smtp.user');
        const passField = smtp.pass !== undefined ? 'pass' : 'password';
        const pass = smtp[passField];
        if (typeof pass !== 'string' || pass === '')
          throw bad(`smtp.${passField}`, 'must be a non-empty string');
        options.auth = { user, pass };
      }
      const from = str(raw, 'from');
      if (!looksLikeAddress(from)) throw bad('from', 'must be an e-mail address');
      const to = raw.to;
      if (!Array.isArray(to) || to.length === 0)
        throw bad('to', 'must be a non-empty list of e-mail addresses');
      to.forEach((addr, i) => {
        if (typeof addr !== 'string' || !looksLikeAddress(addr)) {
          throw bad(`to[${i}]`, 'must be an e-mail address');
        }
      });
      return new EmailNotifier({ ...common, smtp: options, from, to: to as string[] });
    }
    default:
      throw bad('kind', `must be one of ${NOTIFIER_KINDS.join(', ')}`);
  }
}

/** "a@b.c" or "Name <a@b.c>", one line. Deliberately loose: the SMTP server has the last word. */
function looksLikeAddress(v: string): boolean {
  if (CONTROL.test(v)) return false;
  const m = /<([^<>]+)>\s*$/.exec(v);
  const addr = (m?.[1] ?? v).trim();
  return /^[^\s@]+@[^\s@]+$/.test(addr);
}
