/**
 * Identifiers in the statements pgwarden writes: quoted exactly when PostgreSQL's quote_ident()
 * would quote them, and index names that are plain, at most 63 bytes, and unique.
 */
import { createHash } from 'node:crypto';

/** PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated by the server. */
export const MAX_IDENTIFIER_BYTES = 63;

export type KeywordCheck = (word: string) => boolean;

/** `name` as PostgreSQL's quote_ident() writes it: bare when lower-case, safe and not a keyword. */
export function quoteIdent(name: string, isKeyword: KeywordCheck): string {
  if (/^[a-z_][a-z0-9_]*$/.test(name) && !isKeyword(name)) return name;
  return `"${name.replace(/"/g, '""')}"`;
}

/** `schema.table`, each part quoted when needed. */
export function qualifiedName(schema: string, name: string, isKeyword: KeywordCheck): string {
  return `${quoteIdent(schema, isKeyword)}.${quoteIdent(name, isKeyword)}`;
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Lower case, runs of anything but [a-z0-9_] as one "_": "Order Items" -> "order_items". */
function namePart(text: string): string {
  const part = text
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return part === '' ? 'x' : part;
}

/**
 * `idx_<table>_<col>[_<col2>…]`, made of [a-z0-9_] only so it never needs quoting; cut to 63 bytes
 * with a short hash of the full name when longer (the server would cut it without telling).
 */
export function indexName(table: string, columns: string[]): string {
  const full = ['idx', namePart(table), ...columns.map(namePart)].join('_');
  if (byteLength(full) <= MAX_IDENTIFIER_BYTES) return full;
  const hash = createHash('sha1')
    .update(`${table}\u0000${columns.join('\u0000')}`)
    .digest('hex')
    .slice(0, 8);
  return `${full.slice(0, MAX_IDENTIFIER_BYTES - hash.length - 1).replace(/_+$/, '')}_${hash}`;
}

/** `base`, or `base_2`, `base_3`… : the first that `taken` does not hold (still at most 63 bytes). */
export function uniqueName(base: string, taken: (name: string) => boolean): string {
  if (!taken(base)) return base;
  for (let n = 2; ; n++) {
    const suffix = `_${n}`;
    const name = `${base.slice(0, MAX_IDENTIFIER_BYTES - suffix.length)}${suffix}`;
    if (!taken(name)) return name;
  }
}
