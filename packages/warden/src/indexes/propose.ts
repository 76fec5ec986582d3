/**
 * Index proposals: from what the slow statements (and the statements reading scan-heavy tables) ask
 * of each table, and what indexes the table already has, the `CREATE INDEX CONCURRENTLY` statements
 * worth running, with their evidence. Pure: the statements and the catalog come in as data.
 *
 * The rules, conservative on purpose (an index costs every write):
 * - A table occurrence filtered by columns none of which leads a usable index gets one index:
 *   equality columns (=, IN, IS NULL) first, then one range column (<, >, BETWEEN, LIKE 'prefix%'),
 *   or the ORDER BY columns when there is no range column; at most three columns.
 * - If any of those columns already leads a valid, non-partial index that serves the comparison
 *   (btree; hash for equality; BRIN for ranges), nothing is proposed: pgwarden adds indexes where a
 *   statement has none to use, it does not tune composites. A partial index leading with the column
 *   also stops the proposal (its predicate may or may not cover the statement), with a note.
 *   Expression indexes never count for plain columns (and expressions are never proposed).
 * - An occurrence with no filters but a join column gets an index on the join column (for nested
 *   loops); one with neither but ORDER BY … LIMIT gets one on the ORDER BY columns.
 * - Tables under `minRows` rows, partitioned tables (CONCURRENTLY does not work on them) and views
 *   are skipped with a note; an index that exists, even invalid, is never proposed again.
 */
import {
  type RelationName,
  type RelationUsage,
  type Resolver,
  type StatementAnalysis,
  type UseKind,
  analyzeParsed,
  relationNames,
} from './analyze.js';
import { type KeywordCheck, indexName, qualifiedName, quoteIdent, uniqueName } from './names.js';
import type { ParsedSql, Parser } from './parser.js';

export interface CatalogColumn {
  name: string;
  /** format_type() of the column. */
  type: string;
  /** The type has a default btree operator class (jsonb, xml, point… do not). */
  btree: boolean;
  /** The operator class for LIKE 'prefix%' under a non-C collation (text_pattern_ops…); null when none. */
  patternOps: string | null;
  /** The column's collation sorts bytewise (C/POSIX): a plain btree index serves LIKE 'prefix%'. */
  collationC: boolean;
}

export interface CatalogIndex {
  name: string;
  /** Key columns in order (INCLUDE columns excluded); null for an expression. */
  columns: (string | null)[];
  /** Access method: btree, hash, gin, gist, brin… */
  method: string;
  partial: boolean;
  /** indisvalid and indisready: a failed CREATE INDEX CONCURRENTLY leaves an invalid one. */
  valid: boolean;
  /** Operator class of the leading column (text_pattern_ops…). */
  leadingOpclass: string | null;
  /** The leading column is indexed under a C/POSIX collation. */
  leadingCollationC: boolean;
  /** pg_get_indexdef(). */
  definition: string;
}

export interface TableStats {
  /** Live rows (n_live_tup, or reltuples when the statistics are empty). */
  rows: number;
  totalBytes: number;
  seqScan: number;
  seqTupRead: number;
  idxScan: number | null;
}

export interface CatalogTable {
  schema: string;
  name: string;
  /** table (also materialized views), partitioned, or other (views, foreign tables): only tables get indexes. */
  kind: 'table' | 'partitioned' | 'other';
  columns: CatalogColumn[];
  indexes: CatalogIndex[];
  stats: TableStats;
}

export interface Catalog {
  /** Effective search_path (current_schemas(false)); unqualified names resolve through it. */
  searchPath: string[];
  tables: CatalogTable[];
  /** Other relations whose names a proposal must not take (schema-qualified). */
  takenNames?: { schema: string; name: string }[];
}

export interface StatementInput {
  queryId: string | null;
  query: string;
  calls: number;
  meanMs: number;
  totalMs: number;
}

export interface ParsedStatement {
  input: StatementInput;
  parsed?: ParsedSql;
  error?: string;
  /** A statement that could not have been analyzed anyway (not SELECT/INSERT/UPDATE/DELETE/WITH…). */
  utility?: boolean;
}

/** Statements that read tables start with one of these (after comments and parentheses). */
const READING = new Set(['select', 'with', 'insert', 'update', 'delete', 'table', 'values', 'merge']);

/** The first word of a statement, comments and opening parentheses skipped; lower case. */
export function firstWord(sql: string): string {
  const match = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/|\()*([A-Za-z_]+)/.exec(sql);
  return match?.[1]?.toLowerCase() ?? '';
}

export interface AdviseOptions {
  /** Statements slower than this on average are analyzed (ms). */
  slowMeanMillis: number;
  /** Tables with fewer rows are skipped. */
  minRows: number;
  /** A table whose sequential scans read this many rows, more often than index scans, is scan-heavy. */
  seqScanRowsRead: number;
  /** At most this many columns per index (3). */
  maxColumns?: number;
}

export interface ProposedColumn {
  name: string;
  /** How the statements use it: eq, in, is_null, range, like_prefix, join or order. */
  kind: UseKind;
  /** Operator class, when not the default (text_pattern_ops for LIKE under a non-C collation). */
  opclass?: string;
}

export interface StatementEvidence {
  queryId: string | null;
  query: string;
  calls: number;
  meanMs: number;
  totalMs: number;
  /** What the statement does with the table: "created_at (range)". */
  uses: string[];
}

export interface Proposal {
  name: string;
  schema: string;
  table: string;
  columns: ProposedColumn[];
  /** The exact statement to run. */
  statement: string;
  /** One sentence: why. */
  reason: string;
  evidence: {
    table: TableStats & { heavy: boolean };
    statements: StatementEvidence[];
  };
  /** Total execution time of the statements it serves (ms): the ranking key. */
  score: number;
}

export interface AnalyzedStatement {
  input: StatementInput;
  /** Analyzed because it is slow, or only because it reads a scan-heavy table. */
  slow: boolean;
  analysis: StatementAnalysis;
  /** Tables it reads (schema.table). */
  tables: string[];
  /** Names of the proposals it contributed to. */
  proposals: string[];
  /** Existing indexes that already serve it ("public.patients: idx_x"). */
  servedBy: string[];
}

export interface Advice {
  proposals: Proposal[];
  statements: AnalyzedStatement[];
  notes: string[];
  /** Scan-heavy tables (schema.table). */
  heavyTables: string[];
}

const EQUALITY: ReadonlySet<UseKind> = new Set(['eq', 'in', 'is_null']);
const STRENGTH: Record<UseKind, number> = {
  eq: 6,
  is_null: 5,
  in: 4,
  join: 3,
  range: 2,
  like_prefix: 1,
  order: 0,
};

/** Parses each statement with the real parser; a statement that does not parse keeps its error. */
export function parseStatements(parser: Parser, inputs: StatementInput[]): ParsedStatement[] {
  return inputs.map((input) => {
    if (input.query === '<insufficient privilege>') {
      return { input, error: 'its text is hidden from this role (needs pg_read_all_stats)' };
    }
    try {
      return { input, parsed: parser.parse(input.query) };
    } catch (err) {
      // pg_stat_statements also normalizes utility statements (PostgreSQL 18 writes `DEALLOCATE $1`),
      // into text no parser accepts; they read no table, so they are not worth a note.
      return { input, error: (err as Error).message, utility: !READING.has(firstWord(input.query)) };
    }
  });
}

/** Every relation the parsed statements name: what the catalog must describe. */
export function relationsOf(statements: ParsedStatement[]): RelationName[] {
  const seen = new Map<string, RelationName>();
  for (const s of statements) {
    if (!s.parsed) continue;
    for (const r of relationNames(s.parsed)) seen.set(JSON.stringify([r.schema, r.name]), r);
  }
  return [...seen.values()];
}

function key(schema: string, name: string): string {
  return `${schema}\u0000${name}`;
}

/** Resolves names like the server: qualified as written, unqualified through the search_path. */
export function catalogResolver(catalog: Catalog): Resolver {
  const byName = new Map<string, CatalogTable>();
  const columns = new Map<CatalogTable, Set<string>>();
  for (const t of catalog.tables) {
    byName.set(key(t.schema, t.name), t);
    columns.set(t, new Set(t.columns.map((c) => c.name)));
  }
  return (rel) => {
    let table: CatalogTable | undefined;
    if (rel.schema !== null) table = byName.get(key(rel.schema, rel.name));
    else if (!rel.name.startsWith('pg_')) {
      // pg_catalog comes first in every search_path, and all its relations are named pg_*.
      for (const schema of catalog.searchPath) {
        table = byName.get(key(schema, rel.name));
        if (table) break;
      }
    }
    if (!table) return undefined;
    return { schema: table.schema, name: table.name, columns: columns.get(table) as Set<string> };
  };
}

function isHeavy(t: CatalogTable, options: AdviseOptions): boolean {
  return (
    t.kind === 'table' &&
    t.stats.seqTupRead >= options.seqScanRowsRead &&
    t.stats.seqScan > (t.stats.idxScan ?? 0) &&
    t.stats.rows >= options.minRows
  );
}

/** An existing index that serves `kind` comparisons on `column` (it must lead the index). */
function serves(index: CatalogIndex, column: string, kind: UseKind): boolean {
  if (!index.valid || index.partial || index.columns[0] !== column) return false;
  switch (index.method) {
    case 'btree': {
      const pattern = index.leadingOpclass?.endsWith('_pattern_ops') ?? false;
      if (kind === 'like_prefix') return pattern || index.leadingCollationC;
      if ((kind === 'range' || kind === 'order') && pattern) return index.leadingCollationC;
      return true;
    }
    case 'hash':
      return kind === 'eq' || kind === 'in' || kind === 'join';
    case 'brin':
      return kind === 'range';
    default:
      return false;
  }
}

interface Candidate {
  columns: ProposedColumn[];
  reason: string;
}

type Outcome =
  | { candidate: Candidate }
  | { servedBy: CatalogIndex }
  | { partial: CatalogIndex; column: string }
  | undefined;

function describeKind(kind: UseKind): string {
  switch (kind) {
    case 'eq':
      return 'equality';
    case 'in':
      return 'IN';
    case 'is_null':
      return 'IS NULL';
    case 'range':
      return 'range';
    case 'like_prefix':
      return "LIKE 'prefix%'";
    case 'join':
      return 'join';
    case 'order':
      return 'ORDER BY';
  }
}

function dedupe(uses: { column: string; kind: UseKind }[]): { column: string; kind: UseKind }[] {
  const best = new Map<string, UseKind>();
  for (const u of uses) {
    const prior = best.get(u.column);
    if (prior === undefined || STRENGTH[u.kind] > STRENGTH[prior]) best.set(u.column, u.kind);
  }
  return [...best.entries()].map(([column, kind]) => ({ column, kind }));
}

function candidateFor(usage: RelationUsage, table: CatalogTable, maxColumns: number): Outcome {
  const info = new Map(table.columns.map((c) => [c.name, c]));
  const indexable = (column: string, kind: UseKind): boolean => {
    const c = info.get(column);
    if (!c) return false;
    return kind === 'like_prefix' ? c.collationC || c.patternOps !== null : c.btree;
  };
  const opclassFor = (column: string, kind: UseKind): string | undefined => {
    const c = info.get(column);
    return kind === 'like_prefix' && c && !c.collationC && c.patternOps ? c.patternOps : undefined;
  };
  const check = (uses: { column: string; kind: UseKind }[]): Outcome => {
    for (const u of uses) {
      const served = table.indexes.find((i) => serves(i, u.column, u.kind));
      if (served) return { servedBy: served };
    }
    for (const u of uses) {
      const partial = table.indexes.find((i) => i.valid && i.partial && i.columns[0] === u.column);
      if (partial) return { partial, column: u.column };
    }
    return undefined;
  };

  const filters = dedupe(usage.filters).filter((u) => indexable(u.column, u.kind));
  if (filters.length > 0) {
    const existing = check(filters);
    if (existing) return existing;
    const eq = filters.filter((u) => EQUALITY.has(u.kind));
    const ranges = filters.filter((u) => !EQUALITY.has(u.kind));
    const columns: ProposedColumn[] = eq.slice(0, maxColumns).map((u) => ({ name: u.column, kind: u.kind }));
    if (columns.length < maxColumns && ranges.length > 0) {
      const r = ranges.find((u) => u.column === usage.order[0]?.column) ?? (ranges[0] as (typeof ranges)[0]);
      const opclass = opclassFor(r.column, r.kind);
      columns.push(opclass ? { name: r.column, kind: r.kind, opclass } : { name: r.column, kind: r.kind });
    } else if (ranges.length === 0) {
      for (const o of usage.order) {
        if (columns.length >= maxColumns) break;
        if (!columns.some((c) => c.name === o.column) && indexable(o.column, 'order'))
          columns.push({ name: o.column, kind: 'order' });
      }
    }
    const parts = columns.map((c) => `${c.name} (${describeKind(c.kind)})`);
    return {
      candidate: {
        columns,
        reason: `filtered by ${parts.join(', ')}, with no index leading with ${filters.length === 1 ? 'that column' : 'any of these columns'}`,
      },
    };
  }
  const joins = dedupe(usage.joins).filter((u) => indexable(u.column, 'join'));
  if (joins.length > 0) {
    const missing = joins.filter((u) => !table.indexes.some((i) => serves(i, u.column, 'join')));
    if (missing.length === 0) {
      const served = table.indexes.find((i) => serves(i, joins[0]?.column as string, 'join'));
      return served ? { servedBy: served } : undefined;
    }
    const partial = check(missing);
    if (partial) return partial;
    const first = missing[0] as { column: string };
    return {
      candidate: {
        columns: [{ name: first.column, kind: 'join' }],
        reason: `joined on ${first.column} with no filter of its own, and no index leading with ${first.column}`,
      },
    };
  }
  const order = usage.order.filter((u) => indexable(u.column, 'order'));
  if (usage.limited && order.length > 0 && order.length === usage.order.length) {
    const existing = check([order[0] as { column: string; kind: UseKind }]);
    if (existing) return existing;
    const columns: ProposedColumn[] = order
      .slice(0, maxColumns)
      .map((u) => ({ name: u.column, kind: 'order' }));
    return {
      candidate: {
        columns,
        reason: `read in ORDER BY ${columns.map((c) => c.name).join(', ')} … LIMIT order, with no index leading with ${columns[0]?.name}`,
      },
    };
  }
  return undefined;
}

function usesOf(usage: RelationUsage): string[] {
  const all = [...dedupe(usage.filters), ...dedupe(usage.joins), ...usage.order];
  const seen = new Set<string>();
  const out: string[] = [];
  for (const u of all) {
    const text = `${u.column} (${describeKind(u.kind)})`;
    if (!seen.has(text)) {
      seen.add(text);
      out.push(text);
    }
  }
  return out;
}

function sameColumns(a: (string | null)[], b: string[]): boolean {
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

function isPrefix(short: ProposedColumn[], long: ProposedColumn[]): boolean {
  return (
    short.length <= long.length &&
    short.every((c, i) => c.name === long[i]?.name && (c.opclass ?? '') === (long[i]?.opclass ?? ''))
  );
}

function countText(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

interface Draft {
  table: CatalogTable;
  columns: ProposedColumn[];
  reasons: string[];
  statements: Map<string, StatementEvidence>;
  sources: AnalyzedStatement[];
}

/** The proposals for statements already parsed, against the catalog. */
export function advise(
  statements: ParsedStatement[],
  catalog: Catalog,
  options: AdviseOptions,
  isKeyword: KeywordCheck,
): Advice {
  const maxColumns = Math.max(1, Math.min(options.maxColumns ?? 3, 32));
  const resolve = catalogResolver(catalog);
  const tables = new Map(catalog.tables.map((t) => [key(t.schema, t.name), t]));
  const heavy = new Set(catalog.tables.filter((t) => isHeavy(t, options)).map((t) => key(t.schema, t.name)));
  const notes: string[] = [];
  const unparsed: ParsedStatement[] = [];
  const analyzed: AnalyzedStatement[] = [];
  const small = new Map<string, number>();
  const partitioned = new Set<string>();
  const drafts = new Map<string, Draft>();
  const noteSet = new Set<string>();
  const addNote = (text: string): void => {
    if (!noteSet.has(text)) {
      noteSet.add(text);
      notes.push(text);
    }
  };

  for (const s of statements) {
    if (!s.parsed) {
      if (s.input.meanMs > options.slowMeanMillis && !s.utility) unparsed.push(s);
      continue;
    }
    const analysis = analyzeParsed(s.parsed, resolve);
    const slow = s.input.meanMs > options.slowMeanMillis;
    const readsHeavy = analysis.usages.some((u) => heavy.has(key(u.table.schema, u.table.name)));
    if (!slow && !readsHeavy) continue;
    if (analysis.kind === 'other') continue;
    const entry: AnalyzedStatement = {
      input: s.input,
      slow,
      analysis,
      tables: [...new Set(analysis.usages.map((u) => `${u.table.schema}.${u.table.name}`))],
      proposals: [],
      servedBy: [],
    };
    analyzed.push(entry);
    for (const n of analysis.notes) addNote(n);
    for (const usage of analysis.usages) {
      const tableKey = key(usage.table.schema, usage.table.name);
      const table = tables.get(tableKey);
      if (!table || table.kind === 'other') continue;
      if (!slow && !heavy.has(tableKey)) continue;
      const outcome = candidateFor(usage, table, maxColumns);
      if (!outcome) continue;
      if ('servedBy' in outcome) {
        const served = `${table.schema}.${table.name}: ${outcome.servedBy.name}`;
        if (!entry.servedBy.includes(served)) entry.servedBy.push(served);
        continue;
      }
      if ('partial' in outcome) {
        addNote(
          `${table.schema}.${table.name}.${outcome.column}: the partial index ${outcome.partial.name} leads with it; it may serve the statement or not, so nothing is proposed (${outcome.partial.definition})`,
        );
        continue;
      }
      if (table.kind === 'partitioned') {
        partitioned.add(`${table.schema}.${table.name}`);
        continue;
      }
      if (table.stats.rows < options.minRows) {
        small.set(`${table.schema}.${table.name}`, table.stats.rows);
        continue;
      }
      const cols = outcome.candidate.columns;
      const invalid = table.indexes.find(
        (i) =>
          !i.valid &&
          sameColumns(
            i.columns,
            cols.map((c) => c.name),
          ),
      );
      if (invalid) {
        addNote(
          `${table.schema}.${table.name}: the index ${invalid.name} on (${cols.map((c) => c.name).join(', ')}) is INVALID (a failed CREATE INDEX CONCURRENTLY?); drop it with DROP INDEX CONCURRENTLY ${qualifiedName(table.schema, invalid.name, isKeyword)}; and run pgwarden indexes again`,
        );
        continue;
      }
      const covering = table.indexes.find(
        (i) =>
          i.valid &&
          !i.partial &&
          i.method === 'btree' &&
          cols.every((c, n) => i.columns[n] === c.name) &&
          cols.every((c) => !c.opclass),
      );
      if (covering) {
        entry.servedBy.push(`${table.schema}.${table.name}: ${covering.name}`);
        continue;
      }
      const draftKey = `${tableKey}\u0000${cols.map((c) => `${c.name} ${c.opclass ?? ''}`).join('\u0000')}`;
      let draft = drafts.get(draftKey);
      if (!draft) {
        draft = { table, columns: cols, reasons: [], statements: new Map(), sources: [] };
        drafts.set(draftKey, draft);
      }
      if (!draft.reasons.includes(outcome.candidate.reason)) draft.reasons.push(outcome.candidate.reason);
      const statementKey = s.input.queryId ?? s.input.query;
      const evidence = draft.statements.get(statementKey);
      const uses = usesOf(usage);
      if (evidence) {
        for (const u of uses) if (!evidence.uses.includes(u)) evidence.uses.push(u);
      } else {
        draft.statements.set(statementKey, { ...s.input, uses });
        draft.sources.push(entry);
      }
    }
  }

  // (a) and (a, b) on one table: (a, b) serves both.
  const list = [...drafts.values()].sort((a, b) => b.columns.length - a.columns.length);
  const kept: Draft[] = [];
  for (const d of list) {
    const longer = kept.find((k) => k.table === d.table && isPrefix(d.columns, k.columns));
    if (!longer) {
      kept.push(d);
      continue;
    }
    for (const r of d.reasons) if (!longer.reasons.includes(r)) longer.reasons.push(r);
    for (const [k, ev] of d.statements) {
      const prior = longer.statements.get(k);
      if (!prior) longer.statements.set(k, ev);
      else for (const u of ev.uses) if (!prior.uses.includes(u)) prior.uses.push(u);
    }
    for (const src of d.sources) if (!longer.sources.includes(src)) longer.sources.push(src);
  }

  const taken = new Set<string>();
  for (const t of catalog.tables) for (const i of t.indexes) taken.add(key(t.schema, i.name));
  for (const t of catalog.tables) taken.add(key(t.schema, t.name));
  for (const n of catalog.takenNames ?? []) taken.add(key(n.schema, n.name));

  const scored = kept
    .map((d) => {
      const evidence = [...d.statements.values()].sort((a, b) => b.totalMs - a.totalMs);
      return { d, evidence, score: evidence.reduce((sum, e) => sum + e.totalMs, 0) };
    })
    .sort(
      (a, b) =>
        b.score - a.score ||
        b.d.table.stats.seqTupRead - a.d.table.stats.seqTupRead ||
        a.d.table.name.localeCompare(b.d.table.name),
    );

  const proposals: Proposal[] = scored.map(({ d, evidence, score }) => {
    const t = d.table;
    const name = uniqueName(
      indexName(
        t.name,
        d.columns.map((c) => c.name),
      ),
      (n) => taken.has(key(t.schema, n)),
    );
    taken.add(key(t.schema, name));
    const cols = d.columns.map((c) => `${quoteIdent(c.name, isKeyword)}${c.opclass ? ` ${c.opclass}` : ''}`);
    for (const src of d.sources) if (!src.proposals.includes(name)) src.proposals.push(name);
    return {
      name,
      schema: t.schema,
      table: t.name,
      columns: d.columns,
      statement: `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(name, isKeyword)} ON ${qualifiedName(t.schema, t.name, isKeyword)} (${cols.join(', ')});`,
      reason: `${t.schema}.${t.name} is ${d.reasons.join('; and ')}.`,
      evidence: {
        table: { ...t.stats, heavy: heavy.has(key(t.schema, t.name)) },
        statements: evidence,
      },
      score,
    };
  });

  if (unparsed.length > 0) {
    const first = unparsed[0] as ParsedStatement;
    addNote(
      `skipped ${countText(unparsed.length, 'slow statement')} that did not parse (first: ${first.error}: ${first.input.query.slice(0, 120)})`,
    );
  }
  if (small.size > 0) {
    const list = [...small.entries()].map(([n, rows]) => `${n} (${countText(rows, 'row')})`).join(', ');
    addNote(
      `skipped small tables (under ${countText(options.minRows, 'row')}; --min-rows 0 to include them): ${list}`,
    );
  }
  for (const p of partitioned) {
    addNote(
      `${p} is partitioned: CREATE INDEX CONCURRENTLY does not work on partitioned tables; create the index concurrently on each partition, then CREATE INDEX ON ONLY the parent and ATTACH each one`,
    );
  }
  for (const h of heavy) {
    const t = tables.get(h) as CatalogTable;
    const name = `${t.schema}.${t.name}`;
    const touched = proposals.some((p) => p.schema === t.schema && p.table === t.name);
    const served = analyzed.some((a) => a.servedBy.some((s) => s.startsWith(`${name}:`)));
    if (!touched && !served) {
      addNote(
        `${name} is read mostly by sequential scans (${countText(t.stats.seqScan, 'scan')}, ${countText(t.stats.seqTupRead, 'row')} read), but no statement read from pg_stat_statements filters it by a column an index would serve`,
      );
    }
  }
  return {
    proposals,
    statements: analyzed,
    notes,
    heavyTables: [...heavy].map((h) => h.replace('\u0000', '.')),
  };
}
