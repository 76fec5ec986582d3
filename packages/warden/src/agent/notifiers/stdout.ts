/**
 * One line per notification to a writable stream (default process.stdout): readable text, or a JSON
 * object per line (`format: 'json'`) for log shippers. Database-sourced text is made terminal-safe
 * (escape sequences and line breaks shown, not interpreted), so one notification is always one line.
 */
import { oneLine, terminalSafe } from '../../render/text.js';
import type { Notification } from '../types.js';
import { EVENT_TYPES, isoTime, stateOf } from './common.js';
import type { DeliveryResult, Notifier } from './types.js';

/** What the notifier needs of a stream: `process.stdout`, a file stream, or a test double. */
export interface LineSink {
  write(chunk: string, callback?: (err?: Error | null) => void): boolean;
}

export interface StdoutNotifierOptions {
  id: string;
  format?: 'text' | 'json';
  stream?: LineSink;
}

function safe(text: string): string {
  return terminalSafe(oneLine(text));
}

export function stdoutLine(n: Notification, format: 'text' | 'json' = 'text'): string {
  if (format === 'json') {
    // JSON.stringify escapes C0 controls; U+2028/2029 are escaped too so the line stays one line.
    return `${JSON.stringify({ type: EVENT_TYPES[n.event], ...n })
      .replace(/\u2028/g, '\\u2028')
      .replace(/\u2029/g, '\\u2029')}\n`;
  }
  const parts = [
    isoTime(n.at),
    'pgwarden',
    n.severity.toUpperCase(),
    `incident ${safe(n.incidentId)} ${n.event}`,
    `(state ${stateOf(n)}, level ${n.level})`,
    `database=${safe(n.database)}:`,
    safe(n.title),
  ];
  if (n.summary && n.summary !== n.title) parts.push(`— ${safe(n.summary)}`);
  if (n.url) parts.push(`<${safe(n.url)}>`);
  return `${parts.join(' ')}\n`;
}

export class StdoutNotifier implements Notifier {
  readonly id: string;
  readonly kind = 'stdout' as const;
  readonly target: string;
  readonly #format: 'text' | 'json';
  readonly #stream: LineSink;

  constructor(options: StdoutNotifierOptions) {
    this.id = options.id;
    this.#format = options.format ?? 'text';
    this.#stream = options.stream ?? process.stdout;
    this.target = options.stream ? 'stream' : 'stdout';
  }

  send(n: Notification, signal?: AbortSignal): Promise<DeliveryResult> {
    if (signal?.aborted) return Promise.resolve({ ok: false, error: 'stdout: aborted', retryable: false });
    return new Promise((resolve) => {
      try {
        this.#stream.write(stdoutLine(n, this.#format), (err) => {
          resolve(err ? { ok: false, error: `stdout: ${err.message}` } : { ok: true });
        });
      } catch (err) {
        resolve({ ok: false, error: `stdout: ${err instanceof Error ? err.message : String(err)}` });
      }
    });
  }
}
