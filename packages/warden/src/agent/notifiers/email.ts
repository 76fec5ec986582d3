/**
 * E-mail over SMTP with nodemailer: subject "[CRITICAL] pgwarden: <title> (incident <id>)", a text
 * and an HTML body (every database-sourced string HTML-escaped). The Message-ID is derived from the
 * notification, so a retried send is recognisably the same message, and every e-mail of one incident
 * carries the same References header, so mail clients thread them.
 *
 * SMTP reply codes decide retrying: 4xx and connection failures are transient, 5xx and a refused
 * login are not. The password never appears in an error.
 */
import { createHash } from 'node:crypto';
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { Notification } from '../types.js';
import {
  DEFAULT_TIMEOUT_MILLIS,
  eventPrefix,
  httpUrl,
  isoTime,
  messageId,
  redact,
  stateOf,
} from './common.js';
import type { DeliveryResult, Notifier } from './types.js';

export interface SmtpOptions {
  host: string;
  /** Default 465 when `secure`, else 587. */
  port?: number;
  /** TLS from the first byte (port 465). Otherwise STARTTLS is used when the server offers it. */
  secure?: boolean;
  auth?: { user: string; pass: string };
  /** Refuse to send unless STARTTLS succeeds. */
  requireTLS?: boolean;
  /** Never use STARTTLS (only for a local relay). */
  ignoreTLS?: boolean;
  /** Default true: verify the server's certificate. */
  rejectUnauthorized?: boolean;
}

export interface EmailNotifierOptions {
  id: string;
  smtp: SmtpOptions;
  from: string;
  to: string[];
  timeoutMillis?: number;
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Header text on one line: control characters (CR and LF included) become spaces. */
function headerSafe(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ').trim();
}

export function emailSubject(n: Notification): string {
  const tag = n.event === 'resolved' ? 'RESOLVED' : n.severity.toUpperCase();
  return headerSafe(`[${tag}] pgwarden: ${eventPrefix(n)}${n.title} (incident ${n.incidentId})`);
}

function rows(n: Notification): [string, string][] {
  const out: [string, string][] = [
    ['Database', n.database],
    ['Severity', n.severity],
    ['Incident', n.incidentId],
    ['Event', n.event],
    ['State', stateOf(n)],
    ['Level', String(n.level)],
    ['At', isoTime(n.at)],
  ];
  const link = httpUrl(n.url);
  if (link) out.push(['Link', link]);
  return out;
}

export function emailText(n: Notification): string {
  const lines = [`${eventPrefix(n)}${n.title}`, '', n.summary, ''];
  for (const [k, v] of rows(n)) lines.push(`${`${k}:`.padEnd(10)}${v}`);
  lines.push('', '-- pgwarden');
  return `${lines.join('\n')}\n`;
}

export function emailHtml(n: Notification): string {
  const color = n.event === 'resolved' ? '#2e7d32' : n.severity === 'critical' ? '#c62828' : '#ef6c00';
  const link = httpUrl(n.url);
  const table = rows(n)
    .map(([k, v]) => {
      const value =
        k === 'Link' && link ? `<a href="${escapeHtml(link)}">${escapeHtml(link)}</a>` : escapeHtml(v);
      return `<tr><th align="left" style="padding:2px 12px 2px 0">${k}</th><td>${value}</td></tr>`;
    })
    .join('\n');
  return [
    '<!doctype html>',
    '<html><body style="font-family:sans-serif">',
    `<h2 style="color:${color}">${escapeHtml(`${eventPrefix(n)}${n.title}`)}</h2>`,
    `<p style="white-space:pre-wrap">${escapeHtml(n.summary)}</p>`,
    `<table>\n${table}\n</table>`,
    '<p style="color:#777">pgwarden</p>',
    '</body></html>',
    '',
  ].join('\n');
}

type SmtpError = Error & { code?: string; responseCode?: number; command?: string };

/** Transient SMTP failures are retried; permanent ones (5xx, bad login, bad message) are not. */
function retryableSmtp(err: SmtpError): boolean {
  if (typeof err.responseCode === 'number') return err.responseCode < 500;
  switch (err.code) {
    case 'EAUTH':
    case 'EENVELOPE':
    case 'EMESSAGE':
    case 'ETLS':
    case 'ENOAUTH':
      return false;
    default:
      return true;
  }
}

function domainOf(address: string): string {
  const m = /@([A-Za-z0-9.-]+)>?\s*$/.exec(address);
  return m?.[1] ?? 'pgwarden.invalid';
}

export class EmailNotifier implements Notifier {
  readonly id: string;
  readonly kind = 'email' as const;
  readonly target: string;
  readonly #transport: nodemailer.Transporter<SMTPTransport.SentMessageInfo>;
  readonly #from: string;
  readonly #to: string[];
  readonly #secrets: string[];

  constructor(options: EmailNotifierOptions) {
    const { smtp } = options;
    const timeout = options.timeoutMillis ?? DEFAULT_TIMEOUT_MILLIS;
    const secure = smtp.secure ?? false;
    const port = smtp.port ?? (secure ? 465 : 587);
    this.id = options.id;
    this.#from = options.from;
    this.#to = [...options.to];
    this.target = `smtp${secure ? 's' : ''}://${smtp.host}:${port}`;
    this.#secrets = [];
    if (smtp.auth) {
      const { user, pass } = smtp.auth;
      this.#secrets.push(pass, `\u0000${user}\u0000${pass}`, `${user}:${pass}`);
    }
    const transportOptions: SMTPTransport.Options = {
      host: smtp.host,
      port,
      secure,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
      disableFileAccess: true,
      disableUrlAccess: true,
      logger: false,
      debug: false,
    };
    if (smtp.auth) transportOptions.auth = { user: smtp.auth.user, pass: smtp.auth.pass };
    if (smtp.requireTLS !== undefined) transportOptions.requireTLS = smtp.requireTLS;
    if (smtp.ignoreTLS !== undefined) transportOptions.ignoreTLS = smtp.ignoreTLS;
    if (smtp.rejectUnauthorized === false) transportOptions.tls = { rejectUnauthorized: false };
    this.#transport = nodemailer.createTransport(transportOptions);
  }

  async send(n: Notification, signal?: AbortSignal): Promise<DeliveryResult> {
    if (signal?.aborted) return { ok: false, error: 'email: aborted', retryable: false };
    const domain = domainOf(this.#from);
    const thread = createHash('sha256').update(n.dedupKey).digest('base64url').slice(0, 24);
    const sending = this.#transport.sendMail({
      from: this.#from,
      to: this.#to,
      subject: emailSubject(n),
      text: emailText(n),
      html: emailHtml(n),
      messageId: `<${messageId(n, '')}@${domain}>`,
      references: `<incident-${thread}@${domain}>`,
      headers: { 'X-PGWarden-Incident': headerSafe(n.incidentId), 'X-PGWarden-Event': n.event },
    });
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      // nodemailer cannot cancel a send: on abort we stop waiting for it.
      const info = await Promise.race([sending, aborted]);
      if (info === 'aborted') {
        sending.catch(() => {});
        return { ok: false, error: 'email: aborted', retryable: false };
      }
      const accepted = info.accepted?.length ?? 0;
      const rejected = info.rejected?.length ?? 0;
      const status = Number.parseInt(String(info.response ?? ''), 10);
      const result: DeliveryResult = { ok: accepted > 0 };
      if (Number.isFinite(status)) result.status = status;
      if (rejected > 0) {
        result.error = redact(
          `email: the server refused ${rejected} of ${accepted + rejected} recipients`,
          this.#secrets,
        );
        if (accepted === 0) result.retryable = false;
      }
      return result;
    } catch (err) {
      const e = err as SmtpError;
      const result: DeliveryResult = {
        ok: false,
        error: redact(`email: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`, this.#secrets),
        retryable: retryableSmtp(e),
      };
      if (typeof e.responseCode === 'number') result.status = e.responseCode;
      return result;
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Closes pooled connections (none are kept by the default transport; for symmetry). */
  close(): void {
    this.#transport.close();
  }
}
