/**
 * Terminal layout: lines made of styled segments, measured in code points and cut to the width
 * before any colour is added, so colour never changes what fits. Every segment's text passes
 * through `terminalSafe` when it is made: no caller can forget to escape database text.
 */
import type { Severity } from '../finding.js';
import { padEnd, padStart, terminalSafe, width, wrapWords } from './text.js';

/** SGR parameters: the only escape sequences the terminal renderer writes. */
export const STYLE = {
  bold: '1',
  dim: '2',
  red: '31',
  green: '32',
  yellow: '33',
  cyan: '36',
  boldRed: '1;31',
  boldGreen: '1;32',
  boldYellow: '1;33',
} as const;
export type Style = (typeof STYLE)[keyof typeof STYLE];

export const SEVERITY_STYLE: Record<Severity | 'healthy', Style> = {
  healthy: STYLE.boldGreen,
  info: STYLE.green,
  warning: STYLE.boldYellow,
  critical: STYLE.boldRed,
};

/** Indentation of a section's body. */
export const INDENT = 2;

export interface Seg {
  readonly text: string;
  readonly style?: Style | undefined;
}
export type Line = Seg[];

/** A segment of text made safe for the terminal. */
export function seg(text: string, style?: Style): Seg {
  return { text: terminalSafe(text), style };
}

/** Cuts a line to `size` code points (ending in "…") and drops trailing spaces. */
export function fitLine(line: Line, size: number): Line {
  if (size <= 0) return [];
  const total = line.reduce((n, s) => n + width(s.text), 0);
  let out: Seg[] = line;
  if (total > size) {
    out = [];
    let room = size - 1;
    for (const s of line) {
      const w = width(s.text);
      if (w <= room) {
        out.push(s);
        room -= w;
        continue;
      }
      out.push({ text: `${Array.from(s.text).slice(0, room).join('')}…`, style: s.style });
      break;
    }
  }
  out = [...out];
  while (out.length > 0) {
    const last = out[out.length - 1] as Seg;
    const trimmed = last.text.replace(/ +$/, '');
    if (trimmed) {
      out[out.length - 1] = { text: trimmed, style: last.style };
      break;
    }
    out.pop();
  }
  return out;
}

/** One dim line: "No query running longer than 5m", "… and 30 more". */
export function note(text: string, indent: number): Line[] {
  return [[seg(' '.repeat(indent)), seg(text, STYLE.dim)]];
}

/** The line as text, coloured or not. Segments are escaped again: harmless twice, fatal never. */
export function paint(line: Line, color: boolean): string {
  return line
    .map((s) => {
      const text = terminalSafe(s.text);
      return color && s.style ? `\x1b[${s.style}m${text}\x1b[0m` : text;
    })
    .join('');
}

/** "── Title ────────": a section's first line. */
export function rule(title: string, size: number): Line {
  const fill = Math.max(2, size - width(title) - 4);
  return [seg('── ', STYLE.dim), seg(title, STYLE.bold), seg(` ${'─'.repeat(fill)}`, STYLE.dim)];
}

/** Prose wrapped to the width: the first line indented by `indent`, the others by `hanging`. */
export function prose(text: string, size: number, indent: number, style?: Style, hanging = indent): Line[] {
  const safe = terminalSafe(text);
  return wrapWords(safe, Math.max(10, size - Math.max(indent, hanging))).map((l, i) => [
    { text: ' '.repeat(i === 0 ? indent : hanging) },
    { text: l, style },
  ]);
}

/** Restyles the start of wrapped prose's first line: `parts` are [text, style] prefixes, then `rest`. */
export function styleLead(lines: Line[], parts: [string, Style | undefined][], rest?: Style): Line[] {
  const first = lines[0];
  if (!first) return lines;
  const pad = first[0] ?? { text: '' };
  let body = first
    .slice(1)
    .map((s) => s.text)
    .join('');
  const styled: Line = [pad];
  for (const [text, style] of parts) {
    if (!body.startsWith(text)) break;
    styled.push({ text, style });
    body = body.slice(text.length);
  }
  styled.push({ text: body, style: rest });
  lines[0] = styled;
  return lines;
}

/**
 * Items joined by " · " and packed onto as few lines as fit (a list of settings or counts).
 * Each item is a Line, so parts of it can be coloured.
 */
export function flow(items: Line[], size: number, indent: number): Line[] {
  const lines: Line[] = [];
  const pad = seg(' '.repeat(indent));
  let current: Line = [pad];
  let used = indent;
  for (const item of items) {
    const w = item.reduce((n, s) => n + width(s.text), 0);
    if (current.length > 1 && used + 3 + w > size) {
      lines.push(current);
      current = [pad];
      used = indent;
    }
    if (current.length > 1) {
      current.push(seg(' · ', STYLE.dim));
      used += 3;
    }
    current.push(...item);
    used += w;
  }
  if (current.length > 1) lines.push(current);
  return lines;
}

export interface Column {
  header: string;
  align?: 'left' | 'right';
  /** The narrowest a text column gets (default 6); right-aligned columns never cut their values. */
  min?: number;
}

/**
 * A table that fits `size`: columns take their natural width; when a row is too wide, the widest
 * column gives up a character at a time, in rounds: text columns down to 10, then numeric columns'
 * headers down to their values, then text columns down to their minimum, and at last to 3 (a very
 * narrow terminal). Cells are cut with "…", never wrapped; numbers never.
 */
export function table(columns: Column[], rows: Seg[][], size: number, indent: number): Line[] {
  const cells = rows.map((row) => columns.map((_, i) => row[i] ?? seg('')));
  const values = columns.map((_, i) => Math.max(0, ...cells.map((row) => width(row[i]?.text ?? ''))));
  const widths = columns.map((c, i) => Math.max(width(c.header), values[i] as number));
  const numeric = columns.map((c) => c.align === 'right');
  const floors: number[][] = [
    columns.map((c, i) =>
      numeric[i] ? (widths[i] as number) : Math.min(widths[i] as number, Math.max(10, c.min ?? 6)),
    ),
    columns.map((c, i) =>
      numeric[i] ? Math.max(values[i] as number, 4) : Math.min(widths[i] as number, Math.max(10, c.min ?? 6)),
    ),
    columns.map((c, i) =>
      numeric[i] ? Math.max(values[i] as number, 4) : Math.min(widths[i] as number, c.min ?? 6),
    ),
    columns.map((_, i) => (numeric[i] ? Math.max(values[i] as number, 4) : Math.min(widths[i] as number, 3))),
  ];
  const available = size - indent - 2 * (columns.length - 1);
  let total = widths.reduce((a, b) => a + b, 0);
  for (const floor of floors) {
    while (total > available) {
      let widest = -1;
      for (let i = 0; i < widths.length; i++) {
        if ((widths[i] as number) <= (floor[i] as number)) continue;
        if (widest < 0 || (widths[i] as number) > (widths[widest] as number)) widest = i;
      }
      if (widest < 0) break;
      widths[widest] = (widths[widest] as number) - 1;
      total--;
    }
  }
  const pad = seg(' '.repeat(indent));
  const render = (row: Seg[], headerStyle?: Style): Line => {
    const line: Line = [pad];
    row.forEach((cell, i) => {
      const w = widths[i] as number;
      const text = columns[i]?.align === 'right' ? padStart(cell.text, w) : padEnd(cell.text, w);
      if (i > 0) line.push({ text: '  ' });
      line.push({ text, style: headerStyle ?? cell.style });
    });
    return line;
  };
  return [
    render(
      columns.map((c) => seg(c.header)),
      STYLE.dim,
    ),
    ...cells.map((row) => render(row)),
  ];
}

type Quote = "'" | '"' | null;

/**
 * Where a line of code may be broken without changing what it does: SQL breaks at a space
 * outside quotes and comments (a newline is whitespace to SQL); a shell command only before a
 * trailing "#" comment (a newline would end the command). Each point is the index of the first
 * space of a run, so "line + ' ' + continuation" is exactly the original text.
 */
function breakPoints(
  cps: string[],
  language: 'sql' | 'shell',
  quote: Quote,
): { points: number[]; quote: Quote } {
  const points: number[] = [];
  for (let i = 0; i < cps.length; i++) {
    const ch = cps[i];
    if (quote) {
      if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if (language === 'sql' && ch === '-' && cps[i + 1] === '-') break;
    else if (ch === ' ' && cps[i - 1] !== ' ' && i > 0) {
      if (language === 'sql') points.push(i);
      else {
        let j = i;
        while (cps[j] === ' ') j++;
        if (cps[j] === '#') points.push(i);
      }
    }
  }
  return { points, quote };
}

/**
 * Code (an action's exact text) at `indent`, each line broken at safe points when it does not fit;
 * continuation lines are indented two more spaces. What cannot be broken is left for `fitLine`.
 */
export function codeLines(text: string, language: 'sql' | 'shell', size: number, indent: number): Line[] {
  const out: Line[] = [];
  let quote: Quote = null;
  for (const raw of text.split(/\r?\n/)) {
    const cps = Array.from(terminalSafe(raw));
    const found = breakPoints(cps, language, quote);
    quote = found.quote;
    let start = 0;
    let continuation = false;
    while (true) {
      const pad = indent + (continuation ? 2 : 0);
      const room = size - pad;
      if (cps.length - start <= room) break;
      const fits = found.points.filter((p) => p > start && p - start <= room);
      const cut = fits[fits.length - 1];
      if (cut === undefined) break;
      out.push([{ text: ' '.repeat(pad) }, { text: cps.slice(start, cut).join('') }]);
      start = cut + 1;
      continuation = true;
    }
    out.push([{ text: ' '.repeat(indent + (continuation ? 2 : 0)) }, { text: cps.slice(start).join('') }]);
  }
  return out;
}
