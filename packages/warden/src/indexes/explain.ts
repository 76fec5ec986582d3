/**
 * EXPLAIN for a statement as pg_stat_statements keeps it (with $n placeholders), never ANALYZE: the
 * statement is planned, not run, so a slow SELECT is not run again and a write changes nothing.
 *
 * The plan shown is a custom plan for sample values: PREPARE (the server infers each placeholder's
 * type), sample values chosen from pg_stats for placeholders compared with a column (a selective
 * bound for a range: the second-to-last histogram bound for `>`, the second for `<`; a histogram
 * value for `=`), from the type otherwise (`'1 day'::interval`, `now()`, `1`, …), then EXPLAIN EXECUTE
 * under plan_cache_mode = force_custom_plan. When PREPARE fails, PostgreSQL 16+ gets
 * `EXPLAIN (GENERIC_PLAN)`. All of it in a READ ONLY transaction that is rolled back.
 */
import type pg from 'pg';
import type { ParamUse, StatementAnalysis } from './analyze.js';
import { serverText } from './analyze.js';

export interface PlanSample {
  /** `$1 = '1 day'::interval`: the values the plan is for (database text: escape before printing). */
  shown: string[];
  /** The SQL expressions passed to EXECUTE, in placeholder order. */
  args: string[];
}

export interface PlanResult {
  method: 'custom plan for sample values' | 'generic plan' | 'plan';
  sample: PlanSample | null;
  /** EXPLAIN's lines; empty when no plan could be made. */
  lines: string[];
  error: string | null;
}

const STATEMENT_NAME = 'pgwarden_indexes_explain';

function arrayLiteral(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

function typeDefault(type: string, role: ParamUse['role'] | undefined): string {
  if (role === 'limit') return `10::${type}`;
  if (role === 'offset') return `0::${type}`;
  if (type.endsWith('[]')) return `'{}'::${type}`;
  switch (type) {
    case 'interval':
      return `'1 day'::interval`;
    case 'timestamp with time zone':
      return 'now()';
    case 'timestamp without time zone':
      return 'localtimestamp';
    case 'date':
      return 'current_date';
    case 'time without time zone':
      return 'localtime';
    case 'smallint':
    case 'integer':
    case 'bigint':
    case 'numeric':
    case 'real':
    case 'double precision':
      return `1::${type}`;
    case 'boolean':
      return 'true';
    case 'text':
    case 'character varying':
    case 'character':
    case 'name':
      return `'a'::${type}`;
    case 'uuid':
      return `'00000000-0000-0000-0000-000000000000'::uuid`;
    case 'json':
    case 'jsonb':
      return `'{}'::${type}`;
    default:
      return `NULL::${type}`;
  }
}

interface ColumnStats {
  mcv: string[] | null;
  hist: string[] | null;
}

async function columnStats(client: pg.Client, use: ParamUse): Promise<ColumnStats | undefined> {
  if (!use.table || use.column === undefined) return undefined;
  const res = await client.query<ColumnStats>(
    `SELECT most_common_vals::text::text[] AS mcv, histogram_bounds::text::text[] AS hist
       FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3
      ORDER BY inherited LIMIT 1`,
    [use.table.schema, use.table.name, use.column],
  );
  return res.rows[0];
}

/** A value from the statistics that makes the comparison selective, as text; null when none. */
export function statsValue(stats: ColumnStats | undefined, role: ParamUse['role']): string | null {
  const hist = stats?.hist && stats.hist.length >= 3 ? stats.hist : null;
  const mcv = stats?.mcv && stats.mcv.length > 0 ? stats.mcv : null;
  const middle = hist
    ? (hist[Math.floor(hist.length / 2)] as string)
    : mcv
      ? (mcv[mcv.length - 1] as string)
      : null;
  switch (role) {
    case 'eq':
    case 'any':
      return middle;
    case 'gt':
      return hist ? (hist[hist.length - 2] as string) : null;
    case 'lt':
      return hist ? (hist[1] as string) : null;
    case 'between_low':
      return hist ? (hist[Math.max(0, hist.length - 3)] as string) : null;
    case 'between_high':
      return hist ? (hist[hist.length - 2] as string) : null;
    case 'like': {
      if (middle === null) return null;
      const prefix = Array.from(middle).slice(0, 3).join('');
      return /[%_\\]/.test(prefix) ? null : `${prefix}%`;
    }
    default:
      return null;
  }
}

async function sampleFor(client: pg.Client, types: string[], params: ParamUse[]): Promise<PlanSample> {
  const args: string[] = [];
  const shown: string[] = [];
  for (let n = 1; n <= types.length; n++) {
    const type = types[n - 1] as string;
    const uses = params.filter((p) => p.number === n);
    let expr: string | undefined;
    for (const use of uses) {
      if (use.role === 'limit' || use.role === 'offset') break;
      const value = statsValue(await columnStats(client, use), use.role);
      if (value === null) continue;
      expr =
        use.role === 'any' && type.endsWith('[]')
          ? `${client.escapeLiteral(arrayLiteral([value]))}::${type}`
          : `${client.escapeLiteral(value)}::${type}`;
      break;
    }
    expr ??= typeDefault(type, uses[0]?.role);
    args.push(expr);
    shown.push(`$${n} = ${expr.length > 70 ? `${expr.slice(0, 69)}…` : expr}`);
  }
  return { args, shown };
}

function planText(rows: Record<string, unknown>[]): string[] {
  return rows.map((r) => String(r['QUERY PLAN'] ?? Object.values(r)[0] ?? ''));
}

async function rollback(client: pg.Client): Promise<void> {
  await client.query('ROLLBACK').catch(() => undefined);
}

/**
 * The plan of a statement; `sample` reuses the values of an earlier call and `generic` its method
 * (the plan after an index is created must be made like the plan before).
 */
export async function explainStatement(
  client: pg.Client,
  query: string,
  analysis: StatementAnalysis,
  major: number,
  options: { sample?: PlanSample | null; generic?: boolean; timeoutMillis?: number } = {},
): Promise<PlanResult> {
  const sql = serverText(query, analysis);
  const timeout = String(options.timeoutMillis ?? 10_000);
  let prepared = false;
  let firstError: string | null = null;
  if (!(options.generic && major >= 16)) {
    try {
      await client.query('BEGIN READ ONLY');
      await client.query("SELECT set_config('statement_timeout', $1, true)", [timeout]);
      if (analysis.paramCount === 0) {
        const res = await client.query(`EXPLAIN ${sql}`);
        await rollback(client);
        return { method: 'plan', sample: null, lines: planText(res.rows), error: null };
      }
      await client.query(`PREPARE ${STATEMENT_NAME} AS ${sql}`);
      prepared = true;
      const typesRes = await client.query<{ types: string[] }>(
        'SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = $1',
        [STATEMENT_NAME],
      );
      const types = typesRes.rows[0]?.types ?? [];
      const sample = options.sample ?? (await sampleFor(client, types, analysis.params));
      await client.query("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)");
      const res = await client.query(`EXPLAIN EXECUTE ${STATEMENT_NAME}(${sample.args.join(', ')})`);
      await rollback(client);
      return { method: 'custom plan for sample values', sample, lines: planText(res.rows), error: null };
    } catch (err) {
      firstError = (err as Error).message;
      await rollback(client);
    } finally {
      if (prepared) await client.query(`DEALLOCATE ${STATEMENT_NAME}`).catch(() => undefined);
    }
  }
  if (major >= 16) {
    try {
      await client.query('BEGIN READ ONLY');
      await client.query("SELECT set_config('statement_timeout', $1, true)", [timeout]);
      const res = await client.query(`EXPLAIN (GENERIC_PLAN) ${sql}`);
      await rollback(client);
      return { method: 'generic plan', sample: null, lines: planText(res.rows), error: null };
    } catch (err) {
      await rollback(client);
      firstError ??= (err as Error).message;
    }
  }
  return { method: 'plan', sample: null, lines: [], error: firstError };
}

/** Whether a plan reads `index` (an Index Scan, Index Only Scan or Bitmap Index Scan on it). */
export function planUsesIndex(lines: string[], index: string): boolean {
  const quoted = `"${index.replace(/"/g, '""')}"`;
  return lines.some((l) => {
    const m =
      /(?:Index Scan|Index Only Scan)(?: Backward)? using (\S+|"(?:[^"]|"")+") on |Bitmap Index Scan on (\S+|"(?:[^"]|"")+")/.exec(
        l,
      );
    const name = m?.[1] ?? m?.[2];
    return name === index || name === quoted;
  });
}

/** Whether a plan reads `table` by a sequential scan. */
export function planSeqScans(lines: string[], table: string): boolean {
  return lines.some((l) =>
    new RegExp(`Seq Scan on ${table.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`).test(l),
  );
}
