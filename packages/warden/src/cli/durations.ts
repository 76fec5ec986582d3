/** Parses the CLI's durations and percentages, with errors that name the flag and the value. */

const UNITS: Record<string, number> = { ms: 0.001, s: 1, sec: 1, m: 60, min: 60, h: 3600, hr: 3600 };

/** "90s", "5m", "10min", "1h", "1500ms" or a bare number of seconds, to seconds. */
export function parseDurationSeconds(flag: string, raw: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|hr)?\s*$/i.exec(raw);
  if (!match) throw new UsageError(`${flag} takes a duration like 90s, 5m or 1h, got "${raw}"`);
  const unit = (match[2] ?? 's').toLowerCase();
  return Number(match[1]) * (UNITS[unit] as number);
}

/** "75", "75%" or "0.75" to a fraction. */
export function parseFraction(flag: string, raw: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(%)?\s*$/.exec(raw);
  if (!match) throw new UsageError(`${flag} takes a percentage like 75%, got "${raw}"`);
  const value = Number(match[1]);
  const fraction = match[2] || value > 1 ? value / 100 : value;
  if (fraction <= 0 || fraction > 1)
    throw new UsageError(`${flag} must be between 0% and 100%, got "${raw}"`);
  return fraction;
}

export function parseMillis(flag: string, raw: string): number {
  return parseDurationSeconds(flag, /^\s*\d+(\.\d+)?\s*$/.test(raw) ? `${raw}ms` : raw) * 1000;
}

/** A mistake in how the command was called: printed as one line, exit code 3 for doctor. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
