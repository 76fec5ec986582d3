/**
 * `pgwarden indexes`: index advice for the slow statements (pg_stat_statements) and the scan-heavy
 * tables (pg_stat_user_tables), parsed with PostgreSQL's own parser. Dry run by default: prints the
 * proposals, their evidence and the exact `CREATE INDEX CONCURRENTLY` statements. `--execute [name]`
 * creates one (by name, or the first) after `SET lock_timeout`, outside a transaction, and shows the
 * statement's plan before and after. Exit code 0 nothing to propose or created fine, 1 proposals
 * (dry run), 3 unreachable, called wrongly or failed.
 *
 * For cli.ts (commander), the options this command wants:
 *
 *   program
 *     .command('indexes')
 *     .description('propose (and create) the indexes slow statements and scan-heavy tables are missing')
 *     .option('--url <url>', 'PostgreSQL URL (default $DATABASE_URL)')
 *     .option('--slow-mean <ms>', 'analyze statements slower than this on average', '1000')
 *     .option('--min-rows <n>', 'skip tables with fewer rows (0 includes every table)', '10000')
 *     .option('--json', 'print one JSON object')
 *     .option('--execute [name]', 'create one proposed index: the one named, or the first')
 *     .option('--lock-timeout <duration>', 'lock_timeout for CREATE INDEX CONCURRENTLY', '5s')
 *     .option('--statement-timeout <ms>', "statement_timeout of pgwarden's own reads", '5000')
 *     .option('--verbose', 'stacks on errors')
 *     .action(async (flags) => {
 *       process.exitCode = await runIndexes(flags, io);
 *     });
 */
import pg from 'pg';
import { DEFAULT_THRESHOLDS } from '../diagnose/thresholds.js';
import { loadParser } from '../indexes/parser.js';
import {
  type Catalog,
  type Proposal,
  type Advice,
  advise,
  parseStatements,
  relationsOf,
} from '../indexes/propose.js';
import {
  readCatalog,
  readHeavyTables,
  readServerFacts,
  readStatements,
  type ServerFacts,
} from '../indexes/catalog.js';
import { type PlanResult, explainStatement, planSeqScans, planUsesIndex } from '../indexes/explain.js';
import { paragraph, planLines, renderAdvice, statementLines } from '../indexes/render.js';
import { qualifiedName } from '../indexes/names.js';
import { ProbeError, classifyConnectError, isProbeError, redact } from '../probe/errors.js';
import { parseUrl } from '../probe/postgres.js';
import { formatMillis, oneLine, terminalSafe, truncate } from '../render/text.js';
import type { Io } from './doctor.js';
import { UsageError, parseMillis } from './durations.js';

export interface IndexesFlags {
  url?: string;
  slowMean?: string;
  minRows?: string;
  json?: boolean;
  /** `--execute` alone is `true`: the first proposal. */
  execute?: string | boolean;
  lockTimeout?: string;
  statementTimeout?: string;
  verbose?: boolean;
}

export const INDEXES_EXIT = { nothing: 0, executed: 0, proposals: 1, error: 3 } as const;

const DEFAULT_MIN_ROWS = 10_000;
/** Statements whose plans are shown around --execute (the heaviest ones the index serves). */
const PLANNED_STATEMENTS = 3;

interface Settings {
  url: string;
  slowMeanMillis: number;
  minRows: number;
  lockTimeoutMillis: number;
  statementTimeoutMillis: number;
  execute: string | true | undefined;
}

function parseCount(flag: string, raw: string): number {
  const cleaned = raw.trim().replace(/[_,]/g, '');
  const match = /^(\d+(?:\.\d+)?)\s*([kKmM]?)$/.exec(cleaned);
  if (!match) throw new UsageError(`${flag} takes a number of rows like 10000 or 10k, got "${raw}"`);
  const unit = match[2]?.toLowerCase() === 'k' ? 1e3 : match[2]?.toLowerCase() === 'm' ? 1e6 : 1;
  return Math.round(Number(match[1]) * unit);
}

function settingsFrom(flags: IndexesFlags, io: Io): Settings {
  const url = flags.url ?? io.env.DATABASE_URL;
  if (!url) throw new UsageError('no database given: pass --url postgres://… or set DATABASE_URL');
  const lockTimeoutMillis = parseMillis('--lock-timeout', flags.lockTimeout ?? '5s');
  if (lockTimeoutMillis < 1) {
    throw new UsageError('--lock-timeout must be above 0 (0 would let CREATE INDEX wait for locks forever)');
  }
  let execute: Settings['execute'];
  if (flags.execute === true || flags.execute === '') execute = true;
  else if (typeof flags.execute === 'string') execute = flags.execute;
  return {
    url,
    slowMeanMillis:
      flags.slowMean === undefined
        ? DEFAULT_THRESHOLDS.slowMeanMillis
        : parseMillis('--slow-mean', flags.slowMean),
    minRows: flags.minRows === undefined ? DEFAULT_MIN_ROWS : parseCount('--min-rows', flags.minRows),
    lockTimeoutMillis: Math.round(lockTimeoutMillis),
    statementTimeoutMillis: checkTimeout(
      '--statement-timeout',
      Math.round(
        flags.statementTimeout === undefined
          ? 5000
          : parseMillis('--statement-timeout', flags.statementTimeout),
      ),
    ),
    execute,
  };
}

/** PostgreSQL's timeouts are int4 milliseconds. */
function checkTimeout(flag: string, ms: number): number {
  if (ms > 2_147_483_647) throw new UsageError(`${flag} is at most 2147483647 ms, got ${ms}`);
  return ms;
}

async function connect(url: string, statementTimeoutMillis: number): Promise<pg.Client> {
  parseUrl(url);
  const client = new pg.Client({
    connectionString: url,
    application_name: 'pgwarden',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    client.end().catch(() => undefined);
    throw classifyConnectError(err, url);
  }
  try {
    await client.query("SELECT set_config('statement_timeout', $1, false)", [String(statementTimeoutMillis)]);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

interface Gathered {
  facts: ServerFacts;
  advice: Advice;
  catalog: Catalog;
}

async function gather(client: pg.Client, s: Settings): Promise<Gathered> {
  const facts = await readServerFacts(client);
  const read = await readStatements(client, facts.major, { slowMeanMillis: s.slowMeanMillis });
  const heavy = await readHeavyTables(client, DEFAULT_THRESHOLDS.seqScanRowsRead);
  const parser = await loadParser();
  const parsed = parseStatements(parser, read.statements);
  const catalog = await readCatalog(client, facts, [...relationsOf(parsed), ...heavy]);
  const advice = advise(
    parsed,
    catalog,
    {
      slowMeanMillis: s.slowMeanMillis,
      minRows: s.minRows,
      seqScanRowsRead: DEFAULT_THRESHOLDS.seqScanRowsRead,
    },
    parser.needsQuotingAsKeyword,
  );
  if (!read.available && read.error) advice.notes.unshift(read.error);
  return { facts, advice, catalog };
}

function adviceJson(g: Gathered, s: Settings): Record<string, unknown> {
  return {
    server: { version: g.facts.version, database: g.facts.database, searchPath: g.facts.searchPath },
    settings: {
      slowMeanMillis: s.slowMeanMillis,
      minRows: s.minRows,
      seqScanRowsRead: DEFAULT_THRESHOLDS.seqScanRowsRead,
    },
    proposals: g.advice.proposals,
    statements: g.advice.statements.map((st) => ({
      queryId: st.input.queryId,
      query: st.input.query,
      calls: st.input.calls,
      meanMs: st.input.meanMs,
      totalMs: st.input.totalMs,
      slow: st.slow,
      kind: st.analysis.kind,
      tables: st.tables,
      proposals: st.proposals,
      servedBy: st.servedBy,
    })),
    heavyTables: g.advice.heavyTables,
    notes: g.advice.notes,
  };
}

interface PlannedStatement {
  query: string;
  before: PlanResult;
  after: PlanResult | null;
  seqScanBefore: boolean;
  usesIndexAfter: boolean;
}

interface Execution {
  name: string;
  /** schema.name, quoted where needed. */
  qualified: string;
  statement: string;
  lockTimeoutMillis: number;
  created: boolean;
  valid: boolean;
  millis: number;
  error: string | null;
  cleanup: string | null;
  plans: PlannedStatement[];
}

async function execute(
  client: pg.Client,
  g: Gathered,
  proposal: Proposal,
  s: Settings,
  isKeyword: (w: string) => boolean,
): Promise<Execution> {
  const qualified = qualifiedName(proposal.schema, proposal.name, isKeyword);
  const plans: PlannedStatement[] = [];
  for (const ev of proposal.evidence.statements.slice(0, PLANNED_STATEMENTS)) {
    const source = g.advice.statements.find(
      (st) => st.input.queryId === ev.queryId && st.input.query === ev.query,
    );
    if (!source) continue;
    const before = await explainStatement(client, ev.query, source.analysis, g.facts.major);
    plans.push({
      query: ev.query,
      before,
      after: null,
      seqScanBefore: planSeqScans(before.lines, proposal.table),
      usesIndexAfter: false,
    });
  }
  const result: Execution = {
    name: proposal.name,
    qualified,
    statement: proposal.statement,
    lockTimeoutMillis: s.lockTimeoutMillis,
    created: false,
    valid: false,
    millis: 0,
    error: null,
    cleanup: null,
    plans,
  };
  // CREATE INDEX CONCURRENTLY cannot run in a transaction block: each statement is sent alone.
  // lock_timeout bounds every lock wait (including the waits for older transactions to finish);
  // statement_timeout is lifted for the build itself, which takes as long as the table needs.
  await client.query(`SET lock_timeout = '${s.lockTimeoutMillis}ms'`);
  await client.query('SET statement_timeout = 0');
  const started = performance.now();
  try {
    await client.query(proposal.statement);
    result.created = true;
  } catch (err) {
    result.error = (err as Error).message;
  }
  result.millis = Math.round(performance.now() - started);
  const state = await client.query<{ valid: boolean }>(
    'SELECT indisvalid AND indisready AS valid FROM pg_index WHERE indexrelid = to_regclass($1)',
    [qualified],
  );
  const exists = state.rows.length > 0;
  result.valid = state.rows[0]?.valid ?? false;
  if (exists && !result.valid) {
    // A failed concurrent build leaves an INVALID index that every write still maintains: remove it.
    const drop = `DROP INDEX CONCURRENTLY IF EXISTS ${qualified};`;
    try {
      await client.query(drop);
      result.cleanup = `dropped the invalid index left by the failed build (${drop})`;
    } catch (err) {
      result.cleanup = `the failed build left an INVALID index; drop it: ${drop} (${(err as Error).message})`;
    }
  }
  await client.query(`SELECT set_config('statement_timeout', $1, false)`, [String(s.statementTimeoutMillis)]);
  if (result.created && result.valid) {
    for (const p of plans) {
      const source = g.advice.statements.find((st) => st.input.query === p.query);
      if (!source) continue;
      p.after = await explainStatement(client, p.query, source.analysis, g.facts.major, {
        sample: p.before.sample,
        generic: p.before.method === 'generic plan',
      });
      p.usesIndexAfter = planUsesIndex(p.after.lines, proposal.name);
    }
  }
  return result;
}

function renderPlan(title: string, plan: PlanResult, width: number): string[] {
  const out = [...paragraph(title, width, '', '   ')];
  if (plan.error !== null) {
    out.push(...paragraph(terminalSafe(`no plan: ${oneLine(plan.error)}`), width, '   '));
    return out;
  }
  if (plan.method === 'custom plan for sample values' && plan.sample) {
    out.push(...paragraph(terminalSafe(`(${plan.method}: ${plan.sample.shown.join(', ')})`), width, '   '));
  } else if (plan.method === 'generic plan') out.push('   (generic plan: EXPLAIN (GENERIC_PLAN))');
  out.push(...planLines(plan.lines, width, '   '));
  return out;
}

function renderExecution(g: Gathered, proposal: Proposal, ex: Execution, width: number): string {
  const out: string[] = [];
  const cols = proposal.columns.map((c) => c.name).join(', ');
  out.push(
    ...paragraph(
      terminalSafe(
        `pgwarden indexes: creating ${proposal.name} on ${proposal.schema}.${proposal.table} (${cols})`,
      ),
      width,
      '',
    ),
  );
  out.push(...paragraph(terminalSafe(proposal.reason), width, ''));
  ex.plans.forEach((p, i) => {
    out.push('');
    const q = truncate(terminalSafe(oneLine(p.query)), 200);
    out.push(...renderPlan(`Plan before, statement ${i + 1}: ${q}`, p.before, width));
  });
  out.push('');
  out.push(`SET lock_timeout = '${ex.lockTimeoutMillis}ms';`);
  out.push(...statementLines(ex.statement, width, ''));
  if (ex.error !== null) {
    out.push(
      ...paragraph(terminalSafe(`failed after ${formatMillis(ex.millis)}: ${oneLine(ex.error)}`), width, ''),
    );
    if (ex.cleanup) out.push(...paragraph(terminalSafe(ex.cleanup), width, ''));
    return `${out.join('\n')}\n`;
  }
  out.push(
    ex.valid
      ? `Created in ${formatMillis(ex.millis)}; the index is valid.`
      : `Finished in ${formatMillis(ex.millis)}, but the index is not valid.`,
  );
  if (ex.cleanup) out.push(...paragraph(terminalSafe(ex.cleanup), width, ''));
  ex.plans.forEach((p, i) => {
    if (!p.after) return;
    out.push('');
    out.push(...renderPlan(`Plan after, statement ${i + 1}:`, p.after, width));
    if (p.after.error === null && !p.usesIndexAfter) {
      out.push(
        ...paragraph(
          terminalSafe(
            `The planner does not use ${proposal.name} for this statement with these values. If no statement does, drop it: DROP INDEX CONCURRENTLY ${ex.qualified};`,
          ),
          width,
          '   ',
        ),
      );
    }
  });
  const rest = g.advice.proposals.length - 1;
  if (rest > 0) {
    out.push('');
    out.push(
      `${rest} more proposal${rest === 1 ? '' : 's'}: run pgwarden indexes again to see what is left.`,
    );
  }
  return `${out.join('\n')}\n`;
}

export async function runIndexes(flags: IndexesFlags, io: Io): Promise<number> {
  let s: Settings;
  try {
    s = settingsFrom(flags, io);
  } catch (err) {
    io.err(`pgwarden indexes: ${(err as Error).message}\n`);
    return INDEXES_EXIT.error;
  }
  const width = Math.max(40, Math.min(io.columns ?? 80, 120));
  let client: pg.Client | undefined;
  try {
    client = await connect(s.url, s.statementTimeoutMillis);
    const g = await gather(client, s);
    if (s.execute === undefined) {
      if (flags.json) io.out(`${JSON.stringify(adviceJson(g, s), null, 2)}\n`);
      else
        io.out(
          renderAdvice(g.advice, {
            width,
            slowMeanMillis: s.slowMeanMillis,
            minRows: s.minRows,
            server: g.facts.version,
            database: g.facts.database,
          }),
        );
      return g.advice.proposals.length > 0 ? INDEXES_EXIT.proposals : INDEXES_EXIT.nothing;
    }
    const proposals = g.advice.proposals;
    if (proposals.length === 0) {
      if (flags.json) io.out(`${JSON.stringify({ ...adviceJson(g, s), executed: null }, null, 2)}\n`);
      else
        io.out(
          renderAdvice(g.advice, {
            width,
            slowMeanMillis: s.slowMeanMillis,
            minRows: s.minRows,
            server: g.facts.version,
            database: g.facts.database,
          }),
        );
      return INDEXES_EXIT.nothing;
    }
    const wanted = s.execute;
    const proposal = wanted === true ? proposals[0] : proposals.find((p) => p.name === wanted);
    if (!proposal) {
      throw new UsageError(
        `no proposed index is named ${terminalSafe(String(wanted))} (proposed: ${proposals.map((p) => p.name).join(', ')})`,
      );
    }
    const parser = await loadParser();
    const ex = await execute(client, g, proposal, s, parser.needsQuotingAsKeyword);
    if (flags.json) io.out(`${JSON.stringify({ ...adviceJson(g, s), executed: ex }, null, 2)}\n`);
    else io.out(renderExecution(g, proposal, ex, width));
    if (ex.error !== null || !ex.valid) {
      io.err(
        `pgwarden indexes: ${terminalSafe(oneLine(redact(ex.error ?? `${proposal.name} is not valid`, s.url)))}\n`,
      );
      return INDEXES_EXIT.error;
    }
    return INDEXES_EXIT.executed;
  } catch (err) {
    const error =
      err instanceof UsageError
        ? err
        : isProbeError(err)
          ? err
          : client
            ? new Error((err as Error).message)
            : classifyConnectError(err, s.url);
    io.err(`pgwarden indexes: ${terminalSafe(oneLine(redact(error.message, s.url)))}\n`);
    if (error instanceof ProbeError && error.hint && !flags.json) io.err(`${error.hint}\n`);
    if (flags.verbose && err instanceof Error && err.stack) io.err(`${redact(err.stack, s.url)}\n`);
    return INDEXES_EXIT.error;
  } finally {
    await client?.end().catch(() => undefined);
  }
}
