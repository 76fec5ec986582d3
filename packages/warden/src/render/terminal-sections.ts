/**
 * The terminal report's checks, in the runbook's order: server, connections, consumers,
 * long-running queries, idle transactions, locks, slow statements, tables and PgBouncer. Each
 * returns its lines, or one line saying there is nothing to show.
 */
import type { Diagnosis } from '../diagnose/index.js';
import type { Session, Snapshot } from '../snapshot.js';
import { type Column, INDENT, type Line, SEVERITY_STYLE, STYLE, flow, note, seg, table } from './layout.js';
import * as pick from './sections.js';
import {
  compactNumber,
  formatAge,
  formatMean,
  formatMillis,
  formatSpan,
  formatTimeout,
  formatTimestamp,
  groupDigits,
  humanBytes,
  oneLine,
  percent,
  terminalSafe,
  width,
} from './text.js';

export interface Context {
  snap: Snapshot;
  diagnosis: Diagnosis;
  width: number;
  verbose: boolean;
  /** Rows per table (every row when verbose). */
  rows: number;
  t: pick.RenderThresholds;
}

const none = (text: string): Line[] => note(text, INDENT);

function more(shown: number, total: number, what = ''): Line[] {
  return total > shown ? none(`… and ${total - shown} more${what}`) : [];
}

function name(text: string | null | undefined): string {
  return text ? text : '–';
}

export function server(ctx: Context): Line[] {
  const s = ctx.snap.server;
  const v = ctx.snap.visibility;
  const timeouts = pick.timeoutSettings(ctx.snap).map(([setting, ms]): Line => {
    const value = formatTimeout(ms);
    const missing = value === 'off' && (setting === 'statement_timeout' || setting.startsWith('idle_in'));
    return [seg(`${setting} `), seg(value, missing ? STYLE.yellow : undefined)];
  });
  const seenAs = v.superuser ? 'superuser' : v.monitor ? 'pg_monitor' : 'no pg_monitor';
  const hidden = v.hiddenSessions > 0 ? `, ${v.hiddenSessions} sessions hidden` : '';
  return [
    ...flow(
      [
        [seg(`PostgreSQL ${s.version}`, STYLE.bold)],
        [seg(`database ${s.database}`)],
        [seg(`up ${formatSpan(s.uptimeSeconds)}`)],
        [seg(`role ${v.role} (${seenAs}${hidden})`, v.monitor && !hidden ? undefined : STYLE.yellow)],
      ],
      ctx.width,
      INDENT,
    ),
    ...flow(
      [
        [seg(`max_connections ${s.maxConnections}`)],
        [seg(`superuser_reserved ${s.superuserReservedConnections}`)],
        [seg(`reserved ${s.reservedConnections}`)],
        [seg(`usable ${s.usableConnections}`, STYLE.bold)],
      ],
      ctx.width,
      INDENT,
    ),
    ...flow(timeouts, ctx.width, INDENT),
    ...flow(
      [
        [seg(`snapshot ${formatTimestamp(ctx.snap.at)}`)],
        [seg(`probe ${Math.round(ctx.snap.probeMillis)} ms`)],
      ],
      ctx.width,
      INDENT,
    ),
  ];
}

export function connections(ctx: Context): Line[] {
  const c = ctx.snap.connections;
  const severity = pick.findingOf(ctx.diagnosis, 'connections.saturation')?.severity ?? 'info';
  const label = `  ${c.total} / ${c.usable} usable  ${percent(c.usage)}`;
  const barWidth = Math.max(10, Math.min(50, ctx.width - INDENT - width(label) - 2));
  const filled = Math.min(barWidth, Math.round(Math.min(1, Math.max(0, c.usage)) * barWidth));
  const states = pick
    .statesByCount(ctx.snap)
    .map(([state, n]): Line => [seg(`${state} `), seg(String(n), STYLE.bold)]);
  if (c.otherBackends > 0) states.push([seg(`(${c.otherBackends} other backends not counted)`, STYLE.dim)]);
  return [
    [
      seg(' '.repeat(INDENT)),
      seg('█'.repeat(filled), SEVERITY_STYLE[severity]),
      seg('░'.repeat(barWidth - filled), STYLE.dim),
      seg(label, STYLE.bold),
    ],
    ...(states.length > 0 ? flow(states, ctx.width, INDENT) : none('No client connections')),
  ];
}

export function consumers(ctx: Context): Line[] {
  const all = pick.consumersByCount(ctx.snap);
  if (all.length === 0) return none('No client connections');
  const shown = all.slice(0, ctx.rows);
  const columns: Column[] = [
    { header: 'database' },
    { header: 'user' },
    { header: 'application' },
    { header: 'client', min: 9 },
    { header: 'state', min: 10 },
    { header: 'count', align: 'right' },
  ];
  const rows = shown.map((c) => [
    seg(name(c.database)),
    seg(name(c.user)),
    seg(name(c.application)),
    seg(c.clientAddr ?? 'local'),
    seg(c.state),
    seg(String(c.count), STYLE.bold),
  ]);
  const rest = all.slice(shown.length).reduce((n, c) => n + c.count, 0);
  return [
    ...table(columns, rows, ctx.width, INDENT),
    ...more(shown.length, all.length, ` groups (${rest} connections)`),
  ];
}

function sessionTable(ctx: Context, sessions: Session[], ageHeader: string, idle: boolean): Line[] {
  const shown = sessions.slice(0, ctx.rows);
  const columns: Column[] = [
    { header: 'pid', align: 'right' },
    { header: 'user' },
    { header: 'application' },
    { header: 'state', min: 10 },
    { header: ageHeader, align: 'right' },
    ...(idle ? [{ header: 'idle', align: 'right' as const }] : []),
    { header: 'query', min: 10 },
  ];
  const rows = shown.map((s) => [
    seg(String(s.pid)),
    seg(name(s.user)),
    seg(name(s.application)),
    seg(pick.shortState(s)),
    seg(formatAge(pick.sessionAge(s)), STYLE.bold),
    ...(idle ? [seg(formatAge(s.stateAgeSeconds))] : []),
    seg(s.query === null ? '(not visible)' : oneLine(s.query)),
  ]);
  return [...table(columns, rows, ctx.width, INDENT), ...more(shown.length, sessions.length)];
}

export function longRunning(ctx: Context): Line[] {
  const sessions = pick.longRunningSessions(ctx.snap, ctx.diagnosis, ctx.t);
  if (sessions.length === 0)
    return none(`No query running longer than ${formatSpan(ctx.t.longRunningSeconds)}`);
  return sessionTable(ctx, sessions, 'running', false);
}

export function idleInTransaction(ctx: Context): Line[] {
  const sessions = pick.idleInTransactionSessions(ctx.snap, ctx.diagnosis, ctx.t);
  if (sessions.length === 0) {
    return none(`No session idle in a transaction longer than ${formatSpan(ctx.t.idleInTransactionSeconds)}`);
  }
  return sessionTable(ctx, sessions, 'xact age', true);
}

export function locks(ctx: Context): Line[] {
  const chains = ctx.snap.locks;
  if (chains.length === 0) return none('No session waits for a lock another holds');
  const out: Line[] = [];
  const shownChains = chains.slice(0, ctx.verbose ? chains.length : 5);
  for (const chain of shownChains) {
    const n = chain.blockedPids.length;
    out.push([
      seg(' '.repeat(INDENT)),
      seg(`pid ${chain.rootPid}`, STYLE.bold),
      seg(` blocks ${n} session${n === 1 ? '' : 's'} (depth ${chain.depth}); ending it releases the chain`),
    ]);
    const nodes = pick.lockTree(chain, ctx.snap.sessions);
    const shown = nodes.slice(0, ctx.verbose ? nodes.length : 15);
    const columns: Column[] = [
      { header: 'pid' },
      { header: 'user' },
      { header: 'application' },
      { header: 'state', min: 10 },
      { header: 'age', align: 'right' },
      { header: 'query', min: 10 },
    ];
    const rows = shown.map((node) => {
      const s = node.session;
      const pid = seg(`${pick.treePrefix(node)}${node.pid}`, node.depth === 0 ? STYLE.boldRed : undefined);
      if (node.repeated) return [pid, seg(''), seg(''), seg(''), seg(''), seg('(shown above)', STYLE.dim)];
      if (!s)
        return [
          pid,
          seg('–'),
          seg('–'),
          seg('?'),
          seg('–'),
          seg('(not a visible client backend)', STYLE.dim),
        ];
      return [
        pid,
        seg(name(s.user)),
        seg(name(s.application)),
        seg(pick.shortState(s)),
        seg(formatAge(pick.sessionAge(s)), STYLE.bold),
        seg(s.query === null ? '(not visible)' : oneLine(s.query)),
      ];
    });
    out.push(...table(columns, rows, ctx.width, INDENT), ...more(shown.length, nodes.length));
  }
  out.push(...more(shownChains.length, chains.length, ' chains'));
  return out;
}

export function slowQueries(ctx: Context): Line[] {
  const pgss = ctx.snap.statStatements;
  if (!pgss.installed || !pgss.preloaded || pgss.error !== null) {
    const why = pgss.error ?? (pgss.preloaded ? 'extension not created' : 'not in shared_preload_libraries');
    return none(`pg_stat_statements unavailable (${why})`);
  }
  const statements = pick.slowStatements(ctx.snap, ctx.t, ctx.verbose);
  if (statements.length === 0) {
    const slowest = pgss.top[0] ? ` (slowest ${formatMean(pgss.top[0].meanMs)} ms)` : '';
    return none(`No statement averages over ${groupDigits(ctx.t.slowMeanMillis)} ms${slowest}`);
  }
  const shown = statements.slice(0, ctx.rows);
  const columns: Column[] = [
    { header: 'mean ms', align: 'right' },
    { header: 'calls', align: 'right' },
    { header: 'total', align: 'right' },
    { header: 'query', min: 10 },
  ];
  const rows = shown.map((q) => [
    seg(formatMean(q.meanMs), q.meanMs > ctx.t.slowMeanMillis ? STYLE.yellow : undefined),
    seg(compactNumber(q.calls)),
    seg(formatMillis(q.totalMs)),
    seg(oneLine(q.query)),
  ]);
  return [...table(columns, rows, ctx.width, INDENT), ...more(shown.length, statements.length)];
}

export function tables(ctx: Context): Line[] {
  const all = ctx.snap.tables;
  if (all.length === 0) return none('No user tables visible');
  const heavy = pick.seqScanHeavyTables(ctx.diagnosis);
  const shown = all.slice(0, ctx.rows);
  const columns: Column[] = [
    { header: 'table', min: 10 },
    { header: 'size', align: 'right' },
    { header: 'rows', align: 'right' },
    { header: 'seq scans', align: 'right' },
    { header: 'seq rows read', align: 'right' },
    { header: 'idx scans', align: 'right' },
  ];
  const rows = shown.map((t) => {
    const scanHeavy = heavy.has(JSON.stringify([t.schema, t.table]));
    return [
      seg(`${t.schema}.${t.table}`),
      seg(humanBytes(t.totalBytes)),
      seg(compactNumber(t.liveRows)),
      seg(compactNumber(t.seqScan), scanHeavy ? STYLE.yellow : undefined),
      seg(compactNumber(t.seqTupRead), scanHeavy ? STYLE.yellow : undefined),
      seg(t.idxScan === null ? 'no index' : compactNumber(t.idxScan)),
    ];
  });
  return [...table(columns, rows, ctx.width, INDENT), ...more(shown.length, all.length)];
}

export function pgbouncer(ctx: Context, bouncer: NonNullable<Snapshot['pgbouncer']>): Line[] {
  if (bouncer.error !== null) return none(`PgBouncer could not be read: ${bouncer.error}`);
  if (bouncer.pools.length === 0) return none('PgBouncer reports no pools');
  const severity = pick.findingOf(ctx.diagnosis, 'pgbouncer.clients_waiting')?.severity ?? 'warning';
  const shown = bouncer.pools.slice(0, ctx.rows);
  const columns: Column[] = [
    { header: 'database' },
    { header: 'user' },
    { header: 'mode', min: 7 },
    { header: 'cl_active', align: 'right' },
    { header: 'cl_waiting', align: 'right' },
    { header: 'maxwait', align: 'right' },
    { header: 'sv_active', align: 'right' },
  ];
  const rows = shown.map((p) => {
    const waiting = p.clWaiting > 0 ? SEVERITY_STYLE[severity] : undefined;
    return [
      seg(p.database),
      seg(p.user),
      seg(p.poolMode),
      seg(String(p.clActive)),
      seg(String(p.clWaiting), waiting),
      seg(`${p.maxWaitSeconds.toFixed(1)}s`, waiting),
      seg(String(p.svActive)),
    ];
  });
  const out = [
    ...table(columns, rows, ctx.width, INDENT),
    ...more(shown.length, bouncer.pools.length, ' pools'),
  ];
  const groups = pick.bouncerServerGroups(bouncer);
  if (groups.length > 0) out.push([seg(' '.repeat(INDENT)), seg('servers → backend pids', STYLE.dim)]);
  for (const g of groups.slice(0, ctx.rows)) {
    const label = `${g.database}/${g.user} ${g.state} (${g.pids.length}) → `;
    out.push([
      seg(' '.repeat(INDENT)),
      seg(label),
      seg(pidList(g.pids, ctx.width - INDENT - width(terminalSafe(label)))),
    ]);
  }
  out.push(...more(Math.min(groups.length, ctx.rows), groups.length, ' server groups'));
  return out;
}

/** As many pids as fit in `room`, then how many did not: "5000 5001 5002 (+17)". */
function pidList(pids: number[], room: number): string {
  let text = '';
  for (let i = 0; i < pids.length; i++) {
    const next = text ? `${text} ${pids[i]}` : String(pids[i]);
    const rest = pids.length - i - 1;
    if (width(next) + (rest > 0 ? ` (+${rest})`.length : 0) > room)
      return `${text} (+${pids.length - i})`.trimStart();
    text = next;
  }
  return text;
}
