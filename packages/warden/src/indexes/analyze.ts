/**
 * What a statement asks of each table it reads: walks libpg_query's parse tree and finds, per
 * occurrence of a table (aliases, schemas and the search_path resolved), the columns compared in
 * WHERE and JOIN … ON (=, <, >, <=, >=, BETWEEN, IN, = ANY, LIKE 'prefix%', IS NULL), the join
 * columns, and the ORDER BY columns. Pure: the catalog comes in as a resolver.
 *
 * Conservative by design: a condition on an expression of a column (`lower(email) = $1`,
 * `created_at::date = $1`), under NOT, or in only some arms of an OR is not used; an unqualified
 * column that could belong to a subquery, a CTE or a function in scope is not attributed.
 */
import type { ParsedSql } from './parser.js';

/** A relation as the statement names it. */
export interface RelationName {
  schema: string | null;
  name: string;
}

/** A table the catalog knows, with its columns (to attribute unqualified column names). */
export interface ResolvedTable {
  schema: string;
  name: string;
  columns: ReadonlySet<string>;
}

/** Resolves a relation name through the search_path; undefined for anything but a known table. */
export type Resolver = (relation: RelationName) => ResolvedTable | undefined;

export interface TableRef {
  schema: string;
  name: string;
}

/**
 * eq: `= value`; in: `IN (…)`, `= ANY(…)` or the same column in every arm of an OR; is_null;
 * range: <, >, <=, >=, BETWEEN; like_prefix: `LIKE 'abc%'`; join: `= column of another relation`;
 * order: ORDER BY.
 */
export type UseKind = 'eq' | 'in' | 'is_null' | 'range' | 'like_prefix' | 'join' | 'order';

export interface ColumnUse {
  column: string;
  kind: UseKind;
}

/** What one occurrence of a table in a statement is filtered, joined and sorted by. */
export interface RelationUsage {
  table: TableRef;
  alias: string | null;
  /** Comparisons with values (constants, parameters, expressions of other relations' columns excluded). */
  filters: ColumnUse[];
  /** Equalities with a column of another relation (JOIN … ON, USING, correlated subqueries, IN (SELECT)). */
  joins: ColumnUse[];
  /** ORDER BY of the query level that reads it, when every sort key is a column of this occurrence. */
  order: ColumnUse[];
  /** That ORDER BY is descending (an ascending index is read backwards for it). */
  orderDescending: boolean;
  /** That query level has a LIMIT. */
  limited: boolean;
}

/** How a `$n` placeholder is used, to choose a sample value for EXPLAIN. */
export type ParamRole =
  | 'eq'
  | 'any'
  | 'gt'
  | 'lt'
  | 'between_low'
  | 'between_high'
  | 'like'
  | 'limit'
  | 'offset';

export interface ParamUse {
  number: number;
  role: ParamRole;
  /** The column it is compared with, when it is compared with a column. */
  table?: TableRef;
  column?: string;
}

/** `interval $1`: a typed placeholder, valid for libpg_query but not for the server (byte offsets). */
export interface TypedPlaceholder {
  /** Where the type name starts. */
  start: number;
  /** Where the placeholder (`$n`) starts. */
  paramStart: number;
  number: number;
}

export type StatementKind = 'select' | 'update' | 'delete' | 'insert' | 'other';

export interface StatementAnalysis {
  kind: StatementKind;
  /** One entry per occurrence of a known table. */
  usages: RelationUsage[];
  params: ParamUse[];
  /** The highest placeholder number ($n) in the statement. */
  paramCount: number;
  typedPlaceholders: TypedPlaceholder[];
  notes: string[];
}

// ---- parse tree access ----

type Obj = Record<string, unknown>;

function obj(value: unknown): Obj | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : undefined;
}

/** The fields of `value` when it is a node of type `type` (`{ type: {...} }`). */
function as(value: unknown, type: string): Obj | undefined {
  return obj(obj(value)?.[type]);
}

/** The type and fields of a node: `{ A_Expr: {...} }` -> ['A_Expr', {...}]. */
function typed(value: unknown): [string, Obj] | undefined {
  const o = obj(value);
  if (!o) return undefined;
  const keys = Object.keys(o);
  if (keys.length !== 1) return undefined;
  const key = keys[0] as string;
  const fields = obj(o[key]);
  return fields ? [key, fields] : undefined;
}

/** A list field: an array, or a `{ List: { items } }` node. */
function list(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  const l = as(value, 'List');
  return Array.isArray(l?.items) ? (l.items as unknown[]) : [];
}

function stringOf(value: unknown): string | undefined {
  const s = as(value, 'String');
  return typeof s?.sval === 'string' ? s.sval : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

/** Calls `visit` on every object in the tree (depth first). */
function everyObject(value: unknown, visit: (o: Obj) => void): void {
  if (Array.isArray(value)) {
    for (const v of value) everyObject(v, visit);
    return;
  }
  const o = obj(value);
  if (!o) return;
  visit(o);
  for (const v of Object.values(o)) everyObject(v, visit);
}

/** Every relation the statement names (tables, views, CTE references), for loading the catalog. */
export function relationNames(parsed: ParsedSql): RelationName[] {
  const seen = new Map<string, RelationName>();
  everyObject(parsed.stmts, (o) => {
    const rv = obj(o.RangeVar);
    const name = text(rv?.relname);
    if (!rv || name === undefined) return;
    const schema = text(rv.schemaname) ?? null;
    seen.set(JSON.stringify([schema, name]), { schema, name });
  });
  return [...seen.values()];
}

// ---- scopes ----

interface Item {
  /** The name the query refers to it by: alias, or the relation's own name. */
  visible: string | null;
  /** The schema as written, when it has no alias (for schema.table.column). */
  schemaQual: string | null;
  table?: ResolvedTable;
  usage?: RelationUsage;
}

interface Scope {
  items: Item[];
  parent: Scope | undefined;
  ctes: Set<string>;
}

type Resolution = { item: Item } | 'unknown';

/** Functions whose result changes row by row: a comparison with them cannot use an index. */
const VOLATILE = new Set([
  'random',
  'random_normal',
  'clock_timestamp',
  'timeofday',
  'nextval',
  'setval',
  'gen_random_uuid',
  'uuid_generate_v1',
  'uuid_generate_v4',
  'uuidv4',
  'uuidv7',
  'txid_current',
  'pg_sleep',
]);

const RANGE_OPS = new Set(['<', '>', '<=', '>=']);
const FLIP: Record<string, string> = { '<': '>', '>': '<', '<=': '>=', '>=': '<=', '=': '=' };

interface Recorded {
  item: Item;
  use: ColumnUse;
  join: boolean;
}

interface Ctx {
  resolve: Resolver;
  usages: RelationUsage[];
  params: ParamUse[];
  notes: Set<string>;
}

function isCte(name: string, scope: Scope | undefined): boolean {
  for (let s = scope; s; s = s.parent) if (s.ctes.has(name)) return true;
  return false;
}

function resolveColumn(fields: unknown[], scope: Scope): Resolution | undefined {
  const names = fields.map(stringOf);
  if (names.some((n) => n === undefined)) return undefined; // A_Star: t.*
  const parts = names as string[];
  if (parts.length === 1) {
    const column = parts[0] as string;
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const matches = s.items.filter((i) => i.table?.columns.has(column));
      if (matches.length === 1) return { item: matches[0] as Item };
      if (matches.length > 1) return 'unknown';
      // A subquery, CTE or function at this level may have the column: the server would pick it.
      if (s.items.some((i) => !i.table)) return 'unknown';
    }
    return 'unknown';
  }
  if (parts.length === 2 || parts.length === 3) {
    const [qualifier, column] = parts.length === 2 ? [parts[0], parts[1]] : [parts[1], parts[2]];
    const schema = parts.length === 3 ? parts[0] : undefined;
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const item = s.items.find(
        (i) => i.visible === qualifier && (schema === undefined || i.schemaQual === schema),
      );
      if (item) return item.table?.columns.has(column as string) ? { item } : 'unknown';
    }
    return 'unknown';
  }
  return 'unknown';
}

/** `expr` as a plain column of a known table: `col`, `t.col`, `s.t.col` (never an expression of one). */
function plainColumn(expr: unknown, scope: Scope): { item: Item; column: string } | undefined {
  const ref = as(expr, 'ColumnRef');
  if (!ref) return undefined;
  const fields = list(ref.fields);
  const res = resolveColumn(fields, scope);
  if (!res || res === 'unknown' || !res.item.table) return undefined;
  return { item: res.item, column: stringOf(fields[fields.length - 1]) as string };
}

/** The placeholder number of `$n` or `$n::type` / `type $n`. */
function paramNumber(expr: unknown): number | undefined {
  const direct = num(as(expr, 'ParamRef')?.number);
  if (direct !== undefined) return direct;
  const cast = as(expr, 'TypeCast');
  return cast ? num(as(cast.arg, 'ParamRef')?.number) : undefined;
}

/**
 * Whether `expr` can be the value side of an index condition on a column of `item`: it must not read
 * `item` itself nor call a volatile function. `join` when it reads another relation's columns.
 */
function valueSide(expr: unknown, scope: Scope, item: Item): { ok: boolean; join: boolean } {
  let ok = true;
  let join = false;
  const walk = (value: unknown): void => {
    if (!ok) return;
    if (Array.isArray(value)) {
      for (const v of value) walk(v);
      return;
    }
    const t = typed(value);
    if (!t) {
      const o = obj(value);
      if (o) for (const v of Object.values(o)) walk(v);
      return;
    }
    const [type, fields] = t;
    if (type === 'SubLink') return; // a scalar subquery is evaluated once (an InitPlan)
    if (type === 'ColumnRef') {
      const res = resolveColumn(list(fields.fields), scope);
      if (res && res !== 'unknown' && res.item === item) ok = false;
      else join = true;
      return;
    }
    if (type === 'FuncCall') {
      const names = list(fields.funcname).map(stringOf);
      const name = names[names.length - 1];
      if (name && VOLATILE.has(name.toLowerCase())) ok = false;
    }
    for (const v of Object.values(fields)) walk(v);
  };
  walk(expr);
  return { ok, join };
}

function operatorName(aexpr: Obj): string | undefined {
  const names = list(aexpr.name);
  return stringOf(names[names.length - 1]);
}

function likePrefix(pattern: string): boolean {
  const first = pattern[0];
  return pattern.length > 1 && first !== '%' && first !== '_' && first !== '\\';
}

// ---- walking ----

function newUsage(table: ResolvedTable, alias: string | null): RelationUsage {
  return {
    table: { schema: table.schema, name: table.name },
    alias,
    filters: [],
    joins: [],
    order: [],
    orderDescending: false,
    limited: false,
  };
}

function commit(recorded: Recorded[]): void {
  for (const r of recorded) {
    const usage = r.item.usage;
    if (!usage) continue;
    const target = r.join ? usage.joins : usage.filters;
    if (!target.some((u) => u.column === r.use.column && u.kind === r.use.kind)) target.push(r.use);
  }
}

function recordParam(ctx: Ctx, expr: unknown, role: ParamRole, item?: Item, column?: string): void {
  const n = paramNumber(expr);
  if (n === undefined) return;
  const use: ParamUse = { number: n, role };
  if (item?.table && column !== undefined) {
    use.table = { schema: item.table.schema, name: item.table.name };
    use.column = column;
  }
  ctx.params.push(use);
}

/** Finds and walks the subqueries (SubLinks) in an expression. */
function walkSublinks(expr: unknown, scope: Scope, ctx: Ctx): void {
  if (Array.isArray(expr)) {
    for (const e of expr) walkSublinks(e, scope, ctx);
    return;
  }
  const t = typed(expr);
  if (!t) {
    const o = obj(expr);
    if (o) for (const v of Object.values(o)) walkSublinks(v, scope, ctx);
    return;
  }
  const [type, fields] = t;
  if (type === 'SubLink') {
    walkSublinks(fields.testexpr, scope, ctx);
    walkStatementNode(fields.subselect, scope, ctx);
    return;
  }
  if (type === 'SelectStmt') {
    walkSelect(fields, scope, ctx);
    return;
  }
  for (const v of Object.values(fields)) walkSublinks(v, scope, ctx);
}

/** Collects what a WHERE / ON condition says about columns into `out`. */
function condition(expr: unknown, scope: Scope, ctx: Ctx, out: Recorded[]): void {
  const t = typed(expr);
  if (!t) return;
  const [type, fields] = t;
  if (type === 'BoolExpr') {
    const args = list(fields.args);
    if (fields.boolop === 'AND_EXPR') {
      for (const a of args) condition(a, scope, ctx, out);
    } else if (fields.boolop === 'OR_EXPR') {
      orCondition(args, scope, ctx, out);
    } else {
      walkSublinks(args, scope, ctx);
    }
    return;
  }
  if (type === 'A_Expr') {
    aExpr(fields, scope, ctx, out);
    walkSublinks(fields.lexpr, scope, ctx);
    walkSublinks(fields.rexpr, scope, ctx);
    return;
  }
  if (type === 'NullTest') {
    if (fields.nulltesttype === 'IS_NULL') {
      const col = plainColumn(fields.arg, scope);
      if (col) out.push({ item: col.item, use: { column: col.column, kind: 'is_null' }, join: false });
    }
    walkSublinks(fields.arg, scope, ctx);
    return;
  }
  if (type === 'SubLink') {
    // col IN (SELECT …) / col = ANY (SELECT …): a semi-join on col.
    const op = stringOf(list(fields.operName).at(-1));
    if (fields.subLinkType === 'ANY_SUBLINK' && (op === undefined || op === '=')) {
      const col = plainColumn(fields.testexpr, scope);
      if (col) out.push({ item: col.item, use: { column: col.column, kind: 'join' }, join: true });
    }
    walkSublinks(fields.testexpr, scope, ctx);
    walkStatementNode(fields.subselect, scope, ctx);
    return;
  }
  walkSublinks(expr, scope, ctx);
}

/**
 * An OR helps an index only when every arm can use it: a column filtered in every arm counts (as IN,
 * or as a range when some arm compares it by range); anything else in the arms does not.
 */
function orCondition(arms: unknown[], scope: Scope, ctx: Ctx, out: Recorded[]): void {
  const perArm = arms.map((arm) => {
    const armOut: Recorded[] = [];
    condition(arm, scope, ctx, armOut);
    return armOut.filter((r) => !r.join);
  });
  const first = perArm[0];
  if (!first) return;
  for (const candidate of first) {
    const { item, use } = candidate;
    const everywhere = perArm.every((recs) =>
      recs.some((r) => r.item === item && r.use.column === use.column),
    );
    if (!everywhere) continue;
    if (out.some((r) => r.item === item && r.use.column === use.column && !r.join)) continue;
    const kinds = perArm.flatMap((recs) =>
      recs.filter((r) => r.item === item && r.use.column === use.column).map((r) => r.use.kind),
    );
    const rangeLike = kinds.some((k) => k === 'range' || k === 'like_prefix');
    out.push({ item, use: { column: use.column, kind: rangeLike ? 'range' : 'in' }, join: false });
  }
}

function aExpr(e: Obj, scope: Scope, ctx: Ctx, out: Recorded[]): void {
  const kind = text(e.kind);
  const op = operatorName(e);
  if (kind === 'AEXPR_OP' && op !== undefined && (op === '=' || RANGE_OPS.has(op))) {
    const left = plainColumn(e.lexpr, scope);
    const right = plainColumn(e.rexpr, scope);
    if (left && right) {
      if (left.item !== right.item && op === '=') {
        out.push({ item: left.item, use: { column: left.column, kind: 'join' }, join: true });
        out.push({ item: right.item, use: { column: right.column, kind: 'join' }, join: true });
      }
      return;
    }
    const sides: [{ item: Item; column: string } | undefined, unknown, string][] = [
      [left, e.rexpr, op],
      [right, e.lexpr, FLIP[op] as string],
    ];
    for (const [col, value, o] of sides) {
      if (!col) continue;
      const v = valueSide(value, scope, col.item);
      if (!v.ok) continue;
      if (v.join) {
        if (o === '=') out.push({ item: col.item, use: { column: col.column, kind: 'join' }, join: true });
        continue;
      }
      out.push({
        item: col.item,
        use: { column: col.column, kind: o === '=' ? 'eq' : 'range' },
        join: false,
      });
      recordParam(ctx, value, o === '=' ? 'eq' : o.startsWith('>') ? 'gt' : 'lt', col.item, col.column);
    }
    return;
  }
  if (kind === 'AEXPR_OP_ANY' && op === '=') {
    const col = plainColumn(e.lexpr, scope);
    if (!col) return;
    const v = valueSide(e.rexpr, scope, col.item);
    if (!v.ok || v.join) return;
    out.push({ item: col.item, use: { column: col.column, kind: 'in' }, join: false });
    recordParam(ctx, e.rexpr, 'any', col.item, col.column);
    return;
  }
  if (kind === 'AEXPR_IN' && op === '=') {
    const col = plainColumn(e.lexpr, scope);
    if (!col) return;
    const items = list(e.rexpr);
    if (items.length === 0) return;
    for (const item of items) {
      const v = valueSide(item, scope, col.item);
      if (!v.ok || v.join) return;
    }
    out.push({ item: col.item, use: { column: col.column, kind: 'in' }, join: false });
    for (const item of items) recordParam(ctx, item, 'eq', col.item, col.column);
    return;
  }
  if (kind === 'AEXPR_BETWEEN' || kind === 'AEXPR_BETWEEN_SYM') {
    const col = plainColumn(e.lexpr, scope);
    if (!col) return;
    const bounds = list(e.rexpr);
    for (const b of bounds) {
      const v = valueSide(b, scope, col.item);
      if (!v.ok || v.join) return;
    }
    out.push({ item: col.item, use: { column: col.column, kind: 'range' }, join: false });
    recordParam(ctx, bounds[0], 'between_low', col.item, col.column);
    recordParam(ctx, bounds[1], 'between_high', col.item, col.column);
    return;
  }
  if (kind === 'AEXPR_LIKE' && op === '~~') {
    const col = plainColumn(e.lexpr, scope);
    if (!col) return;
    const constant = as(e.rexpr, 'A_Const');
    const pattern = text(obj(constant?.sval)?.sval);
    if (pattern !== undefined) {
      if (likePrefix(pattern))
        out.push({ item: col.item, use: { column: col.column, kind: 'like_prefix' }, join: false });
      return;
    }
    if (paramNumber(e.rexpr) !== undefined) {
      recordParam(ctx, e.rexpr, 'like', col.item, col.column);
      ctx.notes.add(
        `${col.item.table?.name}.${col.column} LIKE $n: the pattern is a parameter, so whether it starts with a wildcard is unknown; not used`,
      );
    }
  }
}

function addFromItem(node: unknown, scope: Scope, ctx: Ctx, quals: unknown[]): Item[] {
  const t = typed(node);
  if (!t) return [];
  const [type, f] = t;
  const aliasName = text(obj(f.alias)?.aliasname) ?? null;
  if (type === 'RangeVar') {
    const name = text(f.relname) as string;
    const schema = text(f.schemaname) ?? null;
    let item: Item;
    if (schema === null && isCte(name, scope)) {
      item = { visible: aliasName ?? name, schemaQual: null };
    } else {
      const table = ctx.resolve({ schema, name });
      item = { visible: aliasName ?? name, schemaQual: aliasName ? null : schema };
      if (table) {
        item.table = table;
        item.usage = newUsage(table, aliasName);
        ctx.usages.push(item.usage);
      }
    }
    scope.items.push(item);
    return [item];
  }
  if (type === 'JoinExpr') {
    const left = addFromItem(f.larg, scope, ctx, quals);
    const right = addFromItem(f.rarg, scope, ctx, quals);
    if (f.quals) quals.push(f.quals);
    for (const u of list(f.usingClause)) {
      const column = stringOf(u);
      if (column === undefined) continue;
      const l = left.filter((i) => i.table?.columns.has(column));
      const r = right.filter((i) => i.table?.columns.has(column));
      const pair = [l.length === 1 ? l[0] : undefined, r.length === 1 ? r[0] : undefined];
      commit(
        pair
          .filter((i): i is Item => i !== undefined)
          .map((item) => ({ item, use: { column, kind: 'join' as const }, join: true })),
      );
    }
    const joinAlias = text(obj(f.alias)?.aliasname);
    if (joinAlias) {
      const item: Item = { visible: joinAlias, schemaQual: null };
      scope.items.push(item);
      return [...left, ...right, item];
    }
    return [...left, ...right];
  }
  if (type === 'RangeSubselect') {
    walkStatementNode(f.subquery, f.lateral ? scope : scope.parent, ctx);
    const item: Item = { visible: aliasName, schemaQual: null };
    scope.items.push(item);
    return [item];
  }
  if (type === 'RangeTableSample') return addFromItem(f.relation, scope, ctx, quals);
  // Functions, XMLTABLE, JSON_TABLE…: nothing to index, but their columns are in scope.
  let visible = aliasName;
  if (visible === null && type === 'RangeFunction') {
    const firstCall = list(list(f.functions)[0])[0];
    const names = list(as(firstCall, 'FuncCall')?.funcname).map(stringOf);
    visible = names[names.length - 1] ?? null;
  }
  const item: Item = { visible, schemaQual: null };
  scope.items.push(item);
  return [item];
}

/** WITH: each CTE's query is walked; its name hides tables of the same name. */
function withScope(withClause: unknown, outer: Scope | undefined, ctx: Ctx): Scope {
  const scope: Scope = { items: [], parent: outer, ctes: new Set() };
  const w = as(withClause, 'WithClause') ?? obj(withClause);
  if (!w) return scope;
  const ctes = list(w.ctes)
    .map((c) => as(c, 'CommonTableExpr'))
    .filter((c): c is Obj => c !== undefined);
  if (w.recursive) for (const c of ctes) scope.ctes.add(text(c.ctename) ?? '');
  for (const c of ctes) {
    if (!w.recursive) {
      // A non-recursive CTE sees the ones before it, not itself.
      walkStatementNode(c.ctequery, scope, ctx);
      scope.ctes.add(text(c.ctename) ?? '');
    } else {
      walkStatementNode(c.ctequery, scope, ctx);
    }
  }
  return scope;
}

function orderBy(sortClause: unknown, targetList: unknown, scope: Scope): void {
  const keys = list(sortClause)
    .map((s) => as(s, 'SortBy'))
    .filter((s): s is Obj => s !== undefined);
  if (keys.length === 0) return;
  const aliases = new Map<string, unknown>();
  for (const t of list(targetList)) {
    const rt = as(t, 'ResTarget');
    const name = text(rt?.name);
    if (rt && name) aliases.set(name, rt.val);
  }
  let item: Item | undefined;
  let descending: boolean | undefined;
  const columns: string[] = [];
  for (const key of keys) {
    let node = key.node;
    const ref = as(node, 'ColumnRef');
    const fields = list(ref?.fields);
    if (ref && fields.length === 1) {
      const alias = stringOf(fields[0]);
      if (alias !== undefined && aliases.has(alias)) node = aliases.get(alias);
    }
    const col = plainColumn(node, scope);
    if (!col || (item && col.item !== item)) return;
    item = col.item;
    const dir = key.sortby_dir;
    if (dir === 'SORTBY_USING') return;
    const desc = dir === 'SORTBY_DESC';
    const nulls = key.sortby_nulls;
    // ASC NULLS LAST and DESC NULLS FIRST are the orders a plain index gives (forwards or backwards).
    if ((nulls === 'SORTBY_NULLS_FIRST' && !desc) || (nulls === 'SORTBY_NULLS_LAST' && desc)) return;
    if (descending !== undefined && descending !== desc) return;
    descending = desc;
    if (!columns.includes(col.column)) columns.push(col.column);
  }
  const usage = item?.usage;
  if (!usage) return;
  usage.order = columns.map((column) => ({ column, kind: 'order' }));
  usage.orderDescending = descending ?? false;
}

function hasLimit(limitCount: unknown): boolean {
  if (limitCount === undefined || limitCount === null) return false;
  return !as(limitCount, 'A_Const')?.isnull; // LIMIT ALL
}

function walkSelect(s: Obj, outer: Scope | undefined, ctx: Ctx): void {
  const withs = s.withClause ? withScope(s.withClause, outer, ctx) : outer;
  if (s.op && s.op !== 'SETOP_NONE') {
    const l = as(s.larg, 'SelectStmt') ?? obj(s.larg);
    const r = as(s.rarg, 'SelectStmt') ?? obj(s.rarg);
    if (l) walkSelect(l, withs, ctx);
    if (r) walkSelect(r, withs, ctx);
    recordParam(ctx, s.limitCount, 'limit');
    recordParam(ctx, s.limitOffset, 'offset');
    return;
  }
  const scope: Scope = { items: [], parent: withs, ctes: new Set() };
  const quals: unknown[] = [];
  for (const from of list(s.fromClause)) addFromItem(from, scope, ctx, quals);
  const recorded: Recorded[] = [];
  for (const q of quals) condition(q, scope, ctx, recorded);
  if (s.whereClause) condition(s.whereClause, scope, ctx, recorded);
  commit(recorded);
  for (const part of [s.targetList, s.havingClause, s.groupClause, s.valuesLists, s.distinctClause]) {
    walkSublinks(part, scope, ctx);
  }
  orderBy(s.sortClause, s.targetList, scope);
  const limited = hasLimit(s.limitCount);
  if (limited) for (const i of scope.items) if (i.usage) i.usage.limited = true;
  recordParam(ctx, s.limitCount, 'limit');
  recordParam(ctx, s.limitOffset, 'offset');
}

function walkModify(s: Obj, kind: 'update' | 'delete', outer: Scope | undefined, ctx: Ctx): void {
  const withs = s.withClause ? withScope(s.withClause, outer, ctx) : outer;
  const scope: Scope = { items: [], parent: withs, ctes: new Set() };
  const quals: unknown[] = [];
  addFromItem({ RangeVar: s.relation }, scope, ctx, quals);
  for (const from of list(kind === 'update' ? s.fromClause : s.usingClause))
    addFromItem(from, scope, ctx, quals);
  const recorded: Recorded[] = [];
  for (const q of quals) condition(q, scope, ctx, recorded);
  if (s.whereClause) condition(s.whereClause, scope, ctx, recorded);
  commit(recorded);
  walkSublinks(s.targetList, scope, ctx);
  walkSublinks(s.returningList, scope, ctx);
}

/** Walks any statement node that reads tables; the kind of statement it was. */
function walkStatementNode(node: unknown, scope: Scope | undefined, ctx: Ctx): StatementKind {
  const t = typed(node);
  if (!t) return 'other';
  const [type, f] = t;
  switch (type) {
    case 'SelectStmt':
      walkSelect(f, scope, ctx);
      return 'select';
    case 'UpdateStmt':
      walkModify(f, 'update', scope, ctx);
      return 'update';
    case 'DeleteStmt':
      walkModify(f, 'delete', scope, ctx);
      return 'delete';
    case 'InsertStmt': {
      const withs = f.withClause ? withScope(f.withClause, scope, ctx) : scope;
      walkStatementNode(f.selectStmt, withs, ctx);
      return 'insert';
    }
    default:
      return 'other';
  }
}

/** Analyzes a parsed statement (one pg_stat_statements entry). */
export function analyzeParsed(parsed: ParsedSql, resolve: Resolver): StatementAnalysis {
  const ctx: Ctx = { resolve, usages: [], params: [], notes: new Set() };
  let kind: StatementKind = 'other';
  for (const raw of parsed.stmts) {
    const k = walkStatementNode(raw.stmt, undefined, ctx);
    if (kind === 'other') kind = k;
  }
  let paramCount = 0;
  const typedPlaceholders: TypedPlaceholder[] = [];
  everyObject(parsed.stmts, (o) => {
    const p = obj(o.ParamRef);
    const n = num(p?.number);
    if (n !== undefined && n > paramCount) paramCount = n;
    const cast = obj(o.TypeCast);
    if (cast) {
      const param = as(cast.arg, 'ParamRef');
      const typeStart = num(obj(cast.typeName)?.location);
      const paramStart = num(param?.location);
      const number = num(param?.number);
      if (
        number !== undefined &&
        typeStart !== undefined &&
        paramStart !== undefined &&
        typeStart >= 0 &&
        typeStart < paramStart
      ) {
        typedPlaceholders.push({ start: typeStart, paramStart, number });
      }
    }
  });
  return {
    kind,
    usages: ctx.usages,
    params: ctx.params,
    paramCount,
    typedPlaceholders,
    notes: [...ctx.notes],
  };
}

/**
 * The statement as the server accepts it: pg_stat_statements writes a typed literal as `interval $1`,
 * which libpg_query parses but PostgreSQL does not; it becomes `CAST($1 AS interval)`.
 */
export function serverText(sql: string, analysis: Pick<StatementAnalysis, 'typedPlaceholders'>): string {
  if (analysis.typedPlaceholders.length === 0) return sql;
  const bytes = Buffer.from(sql, 'utf8');
  const sorted = [...analysis.typedPlaceholders].sort((a, b) => b.start - a.start);
  let out = bytes;
  for (const p of sorted) {
    const placeholder = `$${p.number}`;
    const end = p.paramStart + Buffer.byteLength(placeholder);
    if (out.subarray(p.paramStart, end).toString('utf8') !== placeholder) continue;
    const typeText = out.subarray(p.start, p.paramStart).toString('utf8').trim();
    out = Buffer.concat([
      out.subarray(0, p.start),
      Buffer.from(`CAST(${placeholder} AS ${typeText})`, 'utf8'),
      out.subarray(end),
    ]);
  }
  return out.toString('utf8');
}
