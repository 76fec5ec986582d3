/**
 * Checkout sites: the `file:line:column` of the code that took a connection. Capturing a stack costs
 * a couple of microseconds, so in "adaptive" mode the pool samples at most ten checkouts a second
 * while healthy and captures every checkout for a while after a leak or an acquire timeout, when it
 * matters.
 */
import type { SiteCapture } from './options.js';

/** A captured stack, formatted only when someone asks for it. */
export interface SiteHolder {
  stack?: string;
}

/** While healthy, at most one captured site per this many milliseconds. */
const SAMPLE_INTERVAL_MILLIS = 100;
/** After a leak or a timeout, capture every site for this long. */
const ALERT_WINDOW_MILLIS = 10 * 60_000;

export class SiteSampler {
  private lastSample = Number.NEGATIVE_INFINITY;
  private alertUntil = 0;

  constructor(private readonly mode: SiteCapture) {}

  /** Whether this checkout should record its site. */
  shouldCapture(now: number): boolean {
    if (this.mode === 'always') return true;
    if (this.mode === 'never') return false;
    if (now < this.alertUntil) return true;
    if (now - this.lastSample < SAMPLE_INTERVAL_MILLIS) return false;
    this.lastSample = now;
    return true;
  }

  /** Something went wrong: capture every site for the next few minutes. */
  alert(now: number): void {
    if (this.mode === 'adaptive') this.alertUntil = now + ALERT_WINDOW_MILLIS;
  }

  get capturingAll(): boolean {
    return this.mode === 'always' || (this.mode === 'adaptive' && this.alertUntil > 0);
  }
}

// biome-ignore lint/complexity/noBannedTypes: V8's captureStackTrace takes any function as the frame boundary
export function captureSite(boundary: Function): SiteHolder {
  const holder: SiteHolder = {};
  Error.captureStackTrace(holder, boundary);
  return holder;
}

const FRAME = /\(?((?:file:\/\/)?[^\s()]+):(\d+):(\d+)\)?$/;

/**
 * The first frame of the stack that belongs to the application: not Node's internals, not the pool,
 * not node-postgres.
 */
export function formatSite(holder: SiteHolder | undefined): string | undefined {
  const stack = holder?.stack;
  if (!stack) return undefined;
  for (const line of stack.split('\n').slice(1)) {
    const match = FRAME.exec(line.trim());
    if (!match) continue;
    const file = match[1] as string;
    if (
      file.startsWith('node:') ||
      file.includes('/@pgwarden/pool/') ||
      file.includes('/packages/pool/dist/') ||
      file.includes('/node_modules/pg/') ||
      file.includes('/node_modules/pg-pool/')
    ) {
      continue;
    }
    return `${shortenPath(file)}:${match[2]}:${match[3]}`;
  }
  return undefined;
}

function shortenPath(file: string): string {
  const path = file.startsWith('file://') ? decodeURIComponent(file.slice('file://'.length)) : file;
  const cwd = `${process.cwd()}/`;
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}
