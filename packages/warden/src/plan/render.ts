/**
 * The capacity plan for a person (plain text that reads at 80 columns) and for a program (JSON).
 * Every number is printed with the line that explains it. Pure.
 */
import { terminalSafe, wrapWords } from '../render/text.js';
import type { CapacityPlan, Figure } from './capacity.js';

/** What `--url` measured, shown above the plan. */
export interface Measured {
  server?: { version: string; database: string };
  /** Client sessions now, by application_name (the app's own counted apart). */
  sessions?: { byApplication: { name: string; count: number }[]; app: number; appName: string | null };
  /** How the load was measured, or why it was not. */
  load?: { summary: string } | { missing: string };
}

export interface RenderOptions {
  /** Columns to fit (default 80, at most 120). */
  width?: number;
}

const LABEL = 20;

function rows(lines: string[], label: string, text: string, width: number): void {
  const indent = 2 + LABEL + 1;
  const room = Math.max(20, width - indent);
  const wrapped = wrapWords(terminalSafe(text), room);
  wrapped.forEach((part, i) => {
    lines.push(i === 0 ? `  ${label.padEnd(LABEL)} ${part}` : `${' '.repeat(indent)}${part}`);
  });
}

function row(lines: string[], label: string, f: Figure, width: number): void {
  rows(lines, label, f.why, width);
}

function paragraph(lines: string[], text: string, width: number, prefix = '  '): void {
  const wrapped = wrapWords(terminalSafe(text), Math.max(20, width - prefix.length));
  wrapped.forEach((part, i) => {
    lines.push(`${i === 0 ? prefix : ' '.repeat(prefix.length)}${part}`);
  });
}

/** The plan as text for a terminal or a ticket. */
export function renderPlanText(
  plan: CapacityPlan,
  measured: Measured = {},
  options: RenderOptions = {},
): string {
  const width = Math.max(40, Math.min(options.width ?? 80, 120));
  const lines: string[] = [];
  paragraph(lines, `pgwarden plan: ${plan.headline}`, width, '');

  if (measured.server || measured.sessions || measured.load) {
    lines.push('', 'Measured (--url)');
    if (measured.server) {
      rows(
        lines,
        'server',
        `PostgreSQL ${measured.server.version}, database ${measured.server.database}`,
        width,
      );
    }
    if (measured.sessions) {
      const s = measured.sessions;
      const list = s.byApplication.map((a) => `${a.count} ${a.name}`).join(', ');
      rows(lines, 'client sessions', list.length > 0 ? list : 'none besides pgwarden', width);
      if (s.appName !== null) {
        rows(lines, 'the app now', `${s.app} ${s.app === 1 ? 'session' : 'sessions'} of ${s.appName}`, width);
      }
    }
    if (measured.load) {
      rows(lines, 'load', 'summary' in measured.load ? measured.load.summary : measured.load.missing, width);
    }
  }

  lines.push('', 'Server');
  row(lines, 'max_connections', plan.server.maxConnections, width);
  row(lines, 'usable', plan.server.usable, width);
  row(lines, 'tight above', plan.server.tightLine, width);

  const d = plan.demand;
  lines.push('', 'Worst case (every instance at max + overflow at once)');
  row(lines, 'per instance', d.perInstance, width);
  row(lines, 'app fleet', d.fleet, width);
  row(lines, 'other consumers', d.other, width);
  row(lines, 'worst case', d.worstCase, width);
  if (d.oversubscribedBy) row(lines, 'oversubscribed by', d.oversubscribedBy, width);
  else row(lines, 'headroom', d.headroom, width);
  row(lines, 'usage', d.usagePercent, width);
  row(lines, 'always open', d.minimumOpen, width);
  rows(lines, 'verdict', plan.verdict.toUpperCase(), width);

  const r = plan.runbook;
  lines.push('', "The runbook's Step 2 (pools 50 + 20, max_connections 200)");
  row(lines, 'worst case', r.worstCase, width);
  row(lines, 'usable', r.usable, width);
  if (r.oversubscribedBy) row(lines, 'oversubscribed by', r.oversubscribedBy, width);
  else row(lines, 'headroom', r.headroom, width);
  rows(lines, 'verdict', r.verdict.toUpperCase(), width);

  lines.push('', 'Load');
  if (plan.load) {
    row(lines, 'busy at once', plan.load.concurrency, width);
    row(lines, 'pool per instance', plan.load.perInstance, width);
    row(lines, 'shared (PgBouncer)', plan.load.fleetAtOnce, width);
  } else {
    rows(lines, 'not known', plan.loadMissing ?? '', width);
  }
  if (plan.hikari) row(lines, 'HikariCP reference', plan.hikari, width);

  const rec = plan.recommended;
  lines.push('', 'Recommended per instance');
  row(lines, 'fleet budget', rec.fleetBudget, width);
  row(lines, 'per instance', rec.perInstanceBudget, width);
  if (rec.viable) {
    row(lines, 'max', rec.max, width);
    row(lines, 'overflow', rec.overflow, width);
    row(lines, 'min', rec.min, width);
    row(lines, 'worst case', rec.worstCase, width);
  } else {
    rows(
      lines,
      'none fits',
      `the server cannot give each of the ${plan.input.replicas} instances 2 connections: put PgBouncer in front`,
      width,
    );
  }

  const b = plan.pgbouncer;
  lines.push('', `PgBouncer: ${b.recommended ? 'RECOMMENDED' : 'not needed'}`);
  paragraph(lines, b.reason, width);
  if (b.recommended) {
    row(lines, 'instances', b.instances, width);
    row(lines, 'pools', b.pools, width);
    row(lines, 'per pool', b.perPool, width);
    row(lines, 'default_pool_size', b.defaultPoolSize, width);
    row(lines, 'reserve_pool_size', b.reservePoolSize, width);
    row(lines, 'server connections', b.serverConnections, width);
    row(lines, 'max_client_conn', b.maxClientConn, width);
    row(lines, 'server_lifetime', b.serverLifetime, width);
    row(lines, 'query_wait_timeout', b.queryWaitTimeout, width);
    paragraph(
      lines,
      '`pgwarden pgbouncer-config` (same flags) writes pgbouncer.ini and userlist.txt.',
      width,
    );
  }

  if (plan.notes.length > 0) {
    lines.push('', 'Notes');
    for (const note of plan.notes) paragraph(lines, note, width, '- ');
  }
  return `${lines.join('\n')}\n`;
}

/** The plan (and what was measured) as one JSON object. */
export function renderPlanJson(plan: CapacityPlan, measured: Measured = {}): string {
  return `${JSON.stringify({ ...plan, measured }, null, 2)}\n`;
}
