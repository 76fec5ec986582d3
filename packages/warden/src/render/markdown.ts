/**
 * `pgwarden doctor --markdown`: the same report as the terminal's, shaped for pasting into an
 * incident channel or issue (GitHub-flavoured markdown; Slack shows it readably): a heading with
 * the verdict, a few facts, a table per section (top 10 rows), and the findings with their exact
 * statements in fenced blocks. Database text is escaped so it renders as text, never as markup.
 */
import type { Diagnosis } from '../diagnose/index.js';
import type { Thresholds } from '../diagnose/thresholds.js';
import type { Action, Finding } from '../finding.js';
import type { Session, Snapshot } from '../snapshot.js';
import * as pick from './sections.js';
import {
  codeBlock,
  compactNumber,
  formatAge,
  formatMean,
  formatMillis,
  formatSpan,
  formatTimeout,
  formatTimestamp,
  groupDigits,
  humanBytes,
  markdownCell,
  markdownParagraph,
  markdownText,
  percent,
  terminalSafe,
} from './text.js';

export interface MarkdownOptions {
  /** The thresholds diagnosis used, for the empty sections' wording (default: the runbook's). */
  thresholds?: Partial<Thresholds>;
}

const ROWS = 10;
const QUERY_CHARS = 100;
const STATUS_ICON = { healthy: '🟢', warning: '🟡', critical: '🔴' } as const;

type Align = 'left' | 'right';

export function renderMarkdown(
  snapshot: Snapshot,
  diagnosis: Diagnosis,
  options: MarkdownOptions = {},
): string {
  const t = pick.renderThresholds(options.thresholds);
  const parts: string[] = [
    `## ${STATUS_ICON[diagnosis.status]} ${markdownText(diagnosis.headline)}`,
    ...(diagnosis.cause ? [paragraph(diagnosis.cause.summary)] : []),
    facts(snapshot),
    section('Connection consumers', consumers(snapshot)),
    section('Long-running queries', longRunning(snapshot, diagnosis, t)),
    section('Idle in transaction', idleInTransaction(snapshot, diagnosis, t)),
    section('Locks', locks(snapshot)),
    section('Slow queries', slowQueries(snapshot, t)),
    section('Tables', tables(snapshot)),
  ];
  if (snapshot.pgbouncer) parts.push(section('PgBouncer', pgbouncer(snapshot.pgbouncer)));
  parts.push(section('Next steps', nextSteps(diagnosis)));
  return `${parts.join('\n\n')}\n`;
}

function paragraph(text: string): string {
  return text
    .split('\n')
    .map((line) => markdownParagraph(line))
    .join('  \n');
}

function section(title: string, body: string): string {
  return `### ${title}\n\n${body}`;
}

function none(text: string): string {
  return `_${markdownText(text)}_`;
}

function more(shown: number, total: number, what = ''): string {
  return total > shown ? `\n\n_… and ${total - shown} more${what}_` : '';
}

function mdTable(columns: [string, Align][], rows: string[][]): string {
  const head = `| ${columns.map(([h]) => h).join(' | ')} |`;
  const rule = `|${columns.map(([, a]) => (a === 'right' ? '---:' : '---')).join('|')}|`;
  return [head, rule, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function facts(snap: Snapshot): string {
  const s = snap.server;
  const c = snap.connections;
  const states = pick
    .statesByCount(snap)
    .map(([state, n]) => `${markdownText(state)} ${n}`)
    .join(', ');
  const timeouts = pick
    .timeoutSettings(snap)
    .map(([name, ms]) => `${markdownText(name)} ${formatTimeout(ms)}`)
    .join(', ');
  const v = snap.visibility;
  const seenAs = v.superuser ? 'superuser' : v.monitor ? 'pg_monitor' : 'no pg_monitor';
  return [
    `- **Server:** PostgreSQL ${markdownText(s.version)}, database ${markdownText(s.database)}, up ${formatSpan(s.uptimeSeconds)}`,
    `- **Usage:** ${c.total} / ${c.usable} usable connections (${percent(c.usage)}); max\\_connections ${s.maxConnections}, superuser\\_reserved ${s.superuserReservedConnections}, reserved ${s.reservedConnections}`,
    `- **By state:** ${states || 'no client connections'}`,
    `- **Timeouts:** ${timeouts}`,
    `- **Snapshot:** ${formatTimestamp(snap.at)} (probe ${Math.round(snap.probeMillis)} ms, role ${markdownText(v.role)}, ${markdownText(seenAs)}${v.hiddenSessions > 0 ? `, ${v.hiddenSessions} sessions hidden` : ''})`,
  ].join('\n');
}

function consumers(snap: Snapshot): string {
  const all = pick.consumersByCount(snap);
  if (all.length === 0) return none('No client connections');
  const rows = all
    .slice(0, ROWS)
    .map((c) => [
      markdownCell(c.database ?? '–'),
      markdownCell(c.user ?? '–'),
      markdownCell(c.application || '–'),
      markdownCell(c.clientAddr ?? 'local'),
      markdownCell(c.state),
      String(c.count),
    ]);
  const columns: [string, Align][] = [
    ['database', 'left'],
    ['user', 'left'],
    ['application', 'left'],
    ['client', 'left'],
    ['state', 'left'],
    ['count', 'right'],
  ];
  return mdTable(columns, rows) + more(rows.length, all.length, ' groups');
}

function query(s: Session): string {
  return s.query === null ? '_(not visible)_' : markdownCell(s.query, QUERY_CHARS);
}

function sessionTable(sessions: Session[], ageHeader: string, idle: boolean): string {
  const columns: [string, Align][] = [
    ['pid', 'right'],
    ['user', 'left'],
    ['application', 'left'],
    ['state', 'left'],
    [ageHeader, 'right'],
    ...(idle ? [['idle', 'right'] as [string, Align]] : []),
    ['query', 'left'],
  ];
  const rows = sessions
    .slice(0, ROWS)
    .map((s) => [
      String(s.pid),
      markdownCell(s.user ?? '–'),
      markdownCell(s.application || '–'),
      markdownCell(pick.shortState(s)),
      formatAge(pick.sessionAge(s)),
      ...(idle ? [formatAge(s.stateAgeSeconds)] : []),
      query(s),
    ]);
  return mdTable(columns, rows) + more(rows.length, sessions.length);
}

function longRunning(snap: Snapshot, diagnosis: Diagnosis, t: pick.RenderThresholds): string {
  const sessions = pick.longRunningSessions(snap, diagnosis, t);
  if (sessions.length === 0) return none(`No query running longer than ${formatSpan(t.longRunningSeconds)}`);
  return sessionTable(sessions, 'running', false);
}

function idleInTransaction(snap: Snapshot, diagnosis: Diagnosis, t: pick.RenderThresholds): string {
  const sessions = pick.idleInTransactionSessions(snap, diagnosis, t);
  if (sessions.length === 0) {
    return none(`No session idle in a transaction longer than ${formatSpan(t.idleInTransactionSeconds)}`);
  }
  return sessionTable(sessions, 'xact age', true);
}

function locks(snap: Snapshot): string {
  if (snap.locks.length === 0) return none('No session waits for a lock another holds');
  const columns: [string, Align][] = [
    ['pid', 'left'],
    ['waits for', 'right'],
    ['user', 'left'],
    ['application', 'left'],
    ['state', 'left'],
    ['age', 'right'],
    ['query', 'left'],
  ];
  const chains = snap.locks.slice(0, ROWS).map((chain) => {
    const n = chain.blockedPids.length;
    const nodes = pick.lockTree(chain, snap.sessions);
    const rows = nodes.slice(0, ROWS).map((node) => {
      // Non-breaking spaces: a table cell's leading spaces would be trimmed, flattening the tree.
      const pid = `${pick.treePrefix(node).replace(/ /g, '\u00a0')}${node.depth === 0 ? `**${node.pid}**` : node.pid}`;
      const holder = node.holder === null ? '–' : String(node.holder);
      const s = node.session;
      if (node.repeated) return [pid, holder, ' ', ' ', ' ', ' ', '_(shown above)_'];
      if (!s) return [pid, holder, '–', '–', '?', '–', '_(not a visible client backend)_'];
      return [
        pid,
        holder,
        markdownCell(s.user ?? '–'),
        markdownCell(s.application || '–'),
        markdownCell(pick.shortState(s)),
        formatAge(pick.sessionAge(s)),
        query(s),
      ];
    });
    const heading = `**pid ${chain.rootPid}** blocks ${n} session${n === 1 ? '' : 's'} (depth ${chain.depth}); ending it releases the chain.`;
    return `${heading}\n\n${mdTable(columns, rows)}${more(rows.length, nodes.length)}`;
  });
  return chains.join('\n\n') + more(chains.length, snap.locks.length, ' chains');
}

function slowQueries(snap: Snapshot, t: pick.RenderThresholds): string {
  const pgss = snap.statStatements;
  if (!pgss.installed || !pgss.preloaded || pgss.error !== null) {
    const why = pgss.error ?? (pgss.preloaded ? 'extension not created' : 'not in shared_preload_libraries');
    return none(`pg_stat_statements unavailable (${why})`);
  }
  const statements = pick.slowStatements(snap, t, false);
  if (statements.length === 0) return none(`No statement averages over ${groupDigits(t.slowMeanMillis)} ms`);
  const rows = statements
    .slice(0, ROWS)
    .map((q) => [
      formatMean(q.meanMs),
      compactNumber(q.calls),
      formatMillis(q.totalMs),
      markdownCell(q.query, QUERY_CHARS),
    ]);
  const columns: [string, Align][] = [
    ['mean ms', 'right'],
    ['calls', 'right'],
    ['total', 'right'],
    ['query', 'left'],
  ];
  return mdTable(columns, rows) + more(rows.length, statements.length);
}

function tables(snap: Snapshot): string {
  if (snap.tables.length === 0) return none('No user tables visible');
  const rows = snap.tables
    .slice(0, ROWS)
    .map((t) => [
      markdownCell(`${t.schema}.${t.table}`),
      humanBytes(t.totalBytes),
      compactNumber(t.liveRows),
      compactNumber(t.seqScan),
      compactNumber(t.seqTupRead),
      t.idxScan === null ? 'no index' : compactNumber(t.idxScan),
    ]);
  const columns: [string, Align][] = [
    ['table', 'left'],
    ['size', 'right'],
    ['rows', 'right'],
    ['seq scans', 'right'],
    ['seq rows read', 'right'],
    ['idx scans', 'right'],
  ];
  return mdTable(columns, rows) + more(rows.length, snap.tables.length);
}

function pgbouncer(bouncer: NonNullable<Snapshot['pgbouncer']>): string {
  if (bouncer.error !== null) return none(`PgBouncer could not be read: ${bouncer.error}`);
  if (bouncer.pools.length === 0) return none('PgBouncer reports no pools');
  const columns: [string, Align][] = [
    ['database', 'left'],
    ['user', 'left'],
    ['mode', 'left'],
    ['cl\\_active', 'right'],
    ['cl\\_waiting', 'right'],
    ['maxwait', 'right'],
    ['sv\\_active', 'right'],
    ['sv\\_idle', 'right'],
  ];
  const rows = bouncer.pools
    .slice(0, ROWS)
    .map((p) => [
      markdownCell(p.database),
      markdownCell(p.user),
      markdownCell(p.poolMode),
      String(p.clActive),
      p.clWaiting > 0 ? `**${p.clWaiting}**` : String(p.clWaiting),
      `${p.maxWaitSeconds.toFixed(1)}s`,
      String(p.svActive),
      String(p.svIdle),
    ]);
  const groups = pick.bouncerServerGroups(bouncer).slice(0, ROWS);
  const servers = groups.map((g) => {
    const pids = g.pids.slice(0, 20).join(', ') + (g.pids.length > 20 ? `, … (+${g.pids.length - 20})` : '');
    return `- ${markdownText(`${g.database}/${g.user}`)} ${markdownText(g.state)} (${g.pids.length}): backend pids ${pids}`;
  });
  const serverList = servers.length > 0 ? `\n\nServers → backend pids:\n\n${servers.join('\n')}` : '';
  return mdTable(columns, rows) + more(rows.length, bouncer.pools.length, ' pools') + serverList;
}

function nextSteps(diagnosis: Diagnosis): string {
  const { urgent, info } = pick.splitFindings(diagnosis);
  const parts = urgent.length === 0 ? [none('Nothing needs attention.')] : [];
  // Findings overlap (the root blocker is also idle in a transaction): a statement is printed once.
  const printed = new Map<string, number>();
  urgent.forEach((f, i) => {
    parts.push(finding(f, i + 1, printed));
  });
  if (info.length > 0) {
    const items = info.map((f) => `- ${markdownText(f.title)}: ${markdownText(f.summary)}`);
    parts.push(`**Also noted**\n\n${items.join('\n')}`);
  }
  return parts.join('\n\n');
}

function finding(f: Finding, n: number, printed: Map<string, number>): string {
  const icon = f.severity === 'critical' ? STATUS_ICON.critical : STATUS_ICON.warning;
  const parts = [`#### ${n}. ${icon} ${f.severity}: ${markdownText(f.title)}`, paragraph(f.summary)];
  const { shown, hidden } = pick.visibleActions(f, ROWS);
  const fresh = shown.filter((a) => !printed.has(a.text));
  const repeated = shown.filter((a) => printed.has(a.text));
  for (const a of fresh) printed.set(a.text, n);
  parts.push(...actionBlocks(fresh));
  if (repeated.length > 0) {
    const refs = repeated.map(
      (a) => `${markdownText(`${a.kind} ${a.target}`)} (under ${printed.get(a.text)}.)`,
    );
    parts.push(`_Same statement${repeated.length === 1 ? '' : 's'} as above: ${refs.join(', ')}_`);
  }
  if (hidden > 0)
    parts.push(`_… and ${hidden} more statements like these (\`pgwarden doctor --verbose\` lists them)_`);
  return parts.join('\n\n');
}

/** Consecutive actions in the same language share one block; each is introduced by a comment naming it. */
function actionBlocks(actions: Action[]): string[] {
  const blocks: { language: 'sql' | 'sh'; lines: string[] }[] = [];
  for (const action of actions) {
    const language = action.kind === 'command' || action.kind === 'resize_pool' ? 'sh' : 'sql';
    // The label is one line whatever the target holds: a newline in it would end the comment.
    const label = terminalSafe(
      `${action.kind} ${action.target}${action.risk === 'none' ? '' : ` (risk: ${action.risk})`}`,
    );
    const comment = language === 'sql' ? `-- ${label}` : `# ${label}`;
    const last = blocks[blocks.length - 1];
    if (last && last.language === language) last.lines.push(comment, action.text);
    else blocks.push({ language, lines: [comment, action.text] });
  }
  return blocks.map((b) => codeBlock(b.lines.join('\n'), b.language));
}
