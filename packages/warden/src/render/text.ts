/**
 * Text helpers shared by the renderers: making database text harmless (for a terminal and for
 * markdown), measuring and fitting it by code points, and the short number formats they print.
 *
 * Anything that came from the server (query text, names, addresses, PgBouncer fields, and finding
 * titles that quote them) is attacker-controlled: a query containing "\x1b[2J" would clear the
 * screen of whoever runs `pgwarden doctor`, and an application_name of `<img src=x onerror=…>`
 * would be HTML in a rendered incident report.
 */
export { formatAge } from '../diagnose/actions.js';

/** Tab, line feed and carriage return, by code point. */
const SHORT_ESCAPES: Record<number, string> = { 9: '\\t', 10: '\\n', 13: '\\r' };

/**
 * Characters a terminal interprets instead of printing: C0 controls (ESC, CR, LF, TAB, BEL, …), DEL
 * and C1 controls (0x9b is a one-byte CSI on some terminals), plus the Unicode line separators and
 * bidirectional overrides that reorder what is shown ("Trojan Source").
 */
function isUnsafe(cp: number): boolean {
  return (
    cp <= 0x1f ||
    (cp >= 0x7f && cp <= 0x9f) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x200e ||
    cp === 0x200f ||
    (cp >= 0x202a && cp <= 0x202e) ||
    (cp >= 0x2066 && cp <= 0x2069)
  );
}

function escapeCodePoint(cp: number): string {
  const short = SHORT_ESCAPES[cp];
  if (short) return short;
  const hex = cp.toString(16).padStart(cp <= 0xff ? 2 : 4, '0');
  return cp <= 0xff ? `\\x${hex}` : `\\u${hex}`;
}

/** Replaces every control character with a visible escape (`\x1b`, `\r`, `\u202e`): safe to print. */
export function terminalSafe(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    out += isUnsafe(cp) ? escapeCodePoint(cp) : ch;
  }
  return out;
}

/**
 * Query text on one line: runs of spaces, tabs and newlines (LF or CRLF) become one space. A lone
 * CR is left for `terminalSafe` to show as `\r`: it is how text overwrites the start of a line.
 */
export function oneLine(text: string): string {
  return text.replace(/(?:[ \t\n]|\r\n)+/g, ' ').trim();
}

/** Length in code points (what a terminal shows as one cell for the text we print). */
export function width(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** At most `max` code points; a cut ends in "…". */
export function truncate(text: string, max: number): string {
  if (max <= 0) return '';
  if (width(text) <= max) return text;
  return `${Array.from(text)
    .slice(0, max - 1)
    .join('')}…`;
}

/** Pads (or truncates) to exactly `size` code points. */
export function padEnd(text: string, size: number): string {
  const fitted = truncate(text, size);
  return fitted + ' '.repeat(Math.max(0, size - width(fitted)));
}

export function padStart(text: string, size: number): string {
  const fitted = truncate(text, size);
  return ' '.repeat(Math.max(0, size - width(fitted))) + fitted;
}

/** Prose wrapped at spaces into lines of at most `size` code points (over-long words are split). */
export function wrapWords(text: string, size: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ').filter((w) => w !== '')) {
    let rest = word;
    while (width(rest) > size && size > 0) {
      if (line) lines.push(line);
      const cps = Array.from(rest);
      lines.push(cps.slice(0, size).join(''));
      rest = cps.slice(size).join('');
      line = '';
    }
    if (!line) line = rest;
    else if (width(line) + 1 + width(rest) <= size) line += ` ${rest}`;
    else {
      lines.push(line);
      line = rest;
    }
  }
  if (line) lines.push(line);
  return lines;
}

const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** 8192 -> "8.0 kB", 1234567890 -> "1.1 GB" (binary units, as pg_size_pretty). */
export function humanBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '–';
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  return `${Math.abs(value) < 10 ? value.toFixed(1) : Math.round(value)} ${BYTE_UNITS[unit]}`;
}

/** 1234567 -> "1,234,567". */
export function groupDigits(n: number): string {
  if (!Number.isFinite(n)) return '–';
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Counts in a narrow column: 98765 -> "98,765", 1234567 -> "1.2M". */
export function compactNumber(n: number): string {
  if (!Number.isFinite(n)) return '–';
  if (Math.abs(n) < 100_000) return groupDigits(n);
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, suffix] of units) {
    if (Math.abs(n) >= size) {
      const v = n / size;
      return `${Math.abs(v) < 10 ? v.toFixed(1) : Math.round(v)}${suffix}`;
    }
  }
  return groupDigits(n);
}

/** Mean statement time in ms: 3 significant-ish digits, grouped when large. */
export function formatMean(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 10) return ms.toFixed(2);
  if (ms < 1000) return ms.toFixed(1);
  return groupDigits(ms);
}

/** A duration given in ms: "850ms", "12.3s", "4m05s", "2h10m". */
export function formatMillis(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return formatSpan(Math.round(ms / 1000));
}

/** A threshold or uptime in seconds, without zero parts: 300 -> "5m", 90 -> "1m30s", 93784 -> "1d02h". */
export function formatSpan(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600)
    return s % 60 === 0 ? `${s / 60}m` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) {
    const m = Math.floor((s % 3600) / 60);
    return m === 0 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 3600)}h${String(m).padStart(2, '0')}m`;
  }
  const h = Math.floor((s % 86_400) / 3600);
  return h === 0 ? `${Math.floor(s / 86_400)}d` : `${Math.floor(s / 86_400)}d${String(h).padStart(2, '0')}h`;
}

/** A timeout setting in ms: 0 -> "off", undefined (not on this version) -> "n/a", 300000 -> "5min". */
export function formatTimeout(ms: number | undefined): string {
  if (ms === undefined) return 'n/a';
  if (ms === 0) return 'off';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}min`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function percent(fraction: number): string {
  return Number.isFinite(fraction) ? `${Math.round(fraction * 100)}%` : '–';
}

/** "2026-01-16T10:00:00.123Z" -> "2026-01-16 10:00:00 UTC". */
export function formatTimestamp(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

// ---- markdown ----

const MARKDOWN_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '`': '\\`',
  '*': '\\*',
  _: '\\_',
  '~': '\\~',
  '[': '\\[',
  ']': '\\]',
  '|': '\\|',
  '#': '\\#',
  $: '\\$',
  '<': '&lt;',
  '>': '&gt;',
  '&': '&amp;',
};

/**
 * Database text as inert markdown on one line (a table cell, a list item or a heading): newlines
 * collapsed, other control characters shown as escapes, at most `limit` code points, then every
 * character markdown would act on escaped. `<` and `>` become entities so no HTML is rendered;
 * `$` is escaped for GitHub's math; "@name" gets a zero-width space so it cannot mention anyone.
 */
export function markdownText(text: string, limit = Number.POSITIVE_INFINITY): string {
  const plain = truncate(terminalSafe(oneLine(text)), limit);
  const out = plain.replace(/[\\`*_~[\]|#$<>&]/g, (c) => MARKDOWN_ESCAPES[c] ?? c);
  return out.replace(/@(?=[\w-])/g, '@\u200b');
}

/** `markdownText` for the start of a line: what would start a list or a heading underline is escaped too. */
export function markdownParagraph(text: string): string {
  return markdownText(text)
    .replace(/^([-+=])/, '\\$1')
    .replace(/^(\d+)([.)])/, '$1\\$2');
}

/** A table cell: `markdownText` (pipes included) and never empty, so the row keeps its columns. */
export function markdownCell(text: string | null | undefined, limit = 80): string {
  const cell = markdownText(text ?? '', limit);
  return cell === '' ? ' ' : cell;
}

/**
 * A fenced code block that its content cannot close: the fence is one backtick longer than the
 * longest run of backticks inside. Control characters other than newlines are shown as escapes.
 */
export function codeBlock(text: string, language: string): string {
  const body = text
    .split(/\r?\n/)
    .map((line) => terminalSafe(line))
    .join('\n');
  const longestRun = Math.max(0, ...(body.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longestRun + 1));
  return `${fence}${language}\n${body}\n${fence}`;
}
