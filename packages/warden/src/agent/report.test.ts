import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEntry } from '../remedy/audit.js';
import type { Snapshot } from '../snapshot.js';
import { criticalServer, idleInTransaction, makeSnapshot } from '../snapshot.fixture.js';
import {
  type AppHolder,
  type IncidentReport,
  type ReportInput,
  type ReportNotification,
  buildReport,
  formatOffset,
  renderReportHtml,
  renderReportJson,
  renderReportMarkdown,
} from './report.js';
import type { Incident, TimelineEntry } from './types.js';

const EVIL = '<img src=x onerror=alert(1)>';
const EVIL_ESCAPED = '&lt;img src=x onerror=alert(1)&gt;';
const HEADINGS = [
  'Summary',
  'Impact',
  'Timeline',
  'Snapshots',
  'Root cause',
  'Trigger',
  'Detection',
  'Resolution',
  'Action items',
  'Lessons learned',
];

const t = (hms: string) => Date.parse(`2026-01-16T${hms}.000Z`);
const OPENED = t('10:00:30');
const RESOLVED = t('10:23:40');

function incident(fields: Partial<Incident> = {}): Incident {
  return {
    id: 'inc-1',
    ruleId: 'connections.usage',
    database: 'vitalstream',
    severity: 'critical',
    state: 'resolved',
    title: '88 of 97 usable connections in use (91%)',
    openedAt: OPENED,
    acknowledgedAt: t('10:17:00'),
    acknowledgedBy: 'alice',
    resolvedAt: RESOLVED,
    resolvedBy: 'agent',
    escalationLevel: 1,
    policy: [
      { level: 1, afterMinutes: 15, name: 'Database Team', notifiers: ['pagerduty'] },
      { level: 2, afterMinutes: 30, name: 'Infrastructure Lead', notifiers: ['pagerduty'] },
    ],
    clearSince: null,
    ...fields,
  };
}

function timeline(): TimelineEntry[] {
  const e = (at: number, kind: TimelineEntry['kind'], text: string, data?: unknown): TimelineEntry => ({
    incidentId: 'inc-1',
    at,
    kind,
    text,
    ...(data === undefined ? {} : { data }),
  });
  return [
    e(OPENED, 'opened', 'Opened: 88 of 97 usable connections in use (91%)'),
    e(t('10:15:30'), 'escalated', 'Escalated to level 1', { level: 1 }),
    e(t('10:17:00'), 'acknowledged', 'Acknowledged', { by: 'alice' }),
    // The agent mirrors each outcome on the timeline; the audit entries below are the details.
    e(t('10:17:50'), 'action', 'pid 2000: cancel ok, terminate ok', { pid: 2000 }),
    e(t('10:20:00'), 'cleared', 'Condition cleared'),
    e(RESOLVED, 'resolved', 'Resolved: clear for 3m'),
  ];
}

function terminate(pid: number, at: string): AuditEntry {
  return {
    at,
    event: 'terminate',
    pid,
    backendStart: `2026-01-16T08:00:00.${String(pid).padStart(6, '0')}Z`,
    user: 'billing',
    application: 'billing-worker',
    queryFingerprint: '0123456789abcdef',
    rule: 'idle_in_transaction',
    reason: 'still idle in transaction, transaction 1800s old after the 10000 ms grace period',
    result: 'ok',
    dryRun: false,
    database: 'vitalstream',
  };
}

function notifications(): ReportNotification[] {
  return [
    { notifier: 'slack', event: 'opened', level: 0, at: OPENED + 400, ok: true },
    { notifier: 'pagerduty', event: 'escalated', level: 1, at: t('10:15:31'), ok: false, error: 'HTTP 503' },
    {
      notifier: 'pagerduty',
      event: 'escalated',
      level: 1,
      at: t('10:15:33'),
      ok: true,
      attempt: 2,
      detail: 'HTTP 202',
    },
    { notifier: 'slack', event: 'resolved', level: 0, at: RESOLVED + 300, ok: true },
  ];
}

/** 12 of billing-worker's stuck transactions came from one handler; pid 1000 (idle web) elsewhere. */
function holders(): AppHolder[] {
  const out: AppHolder[] = [];
  for (let i = 0; i < 12; i++) {
    out.push({
      pid: 2000 + i,
      site: 'src/handlers/report.ts:34',
      heldMillis: 240_000 - i * 1000,
      pool: 'vitals-api',
    });
  }
  out.push({ pid: 1000, site: 'src/jobs/nightly.ts:9', heldMillis: 5_000, pool: 'web' });
  return out;
}

/** The critical scene three minutes later, with three more stuck transactions from a hostile name. */
function peakSnapshot(): Snapshot {
  const base = criticalServer();
  const extra = [6000, 6001, 6002].map((pid) =>
    idleInTransaction(pid, 300, { application: EVIL, user: 'app', query: 'SELECT 1' }),
  );
  return makeSnapshot([...base.sessions, ...extra], {
    at: '2026-01-16T10:03:00.000Z',
    server: base.server,
    statStatements: base.statStatements,
    tables: base.tables,
  });
}

function input(fields: Partial<ReportInput> = {}): ReportInput {
  return {
    incident: incident(),
    timeline: timeline(),
    openSnapshot: criticalServer(),
    peakSnapshot: peakSnapshot(),
    notifications: notifications(),
    actions: [terminate(2000, '2026-01-16T10:17:40.000Z'), terminate(2001, '2026-01-16T10:17:41.000Z')],
    appHolders: holders(),
    ...fields,
  };
}

/** The text of a markdown section: from its `## ` heading to the next. */
function mdSection(md: string, heading: string): string {
  const start = md.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `no section ${heading}`);
  const end = md.indexOf('\n## ', start + 1);
  return md.slice(start, end < 0 ? undefined : end);
}

function htmlSection(page: string, heading: string): string {
  const start = page.indexOf(`<h2>${heading}</h2>`);
  assert.ok(start >= 0, `no section ${heading}`);
  return page.slice(start, page.indexOf('</section>', start));
}

describe('buildReport', () => {
  const report = buildReport(input());
  const md = renderReportMarkdown(report);
  const page = renderReportHtml(report);

  it('has every postmortem heading, in order, in markdown and in HTML', () => {
    let mdAt = -1;
    let htmlAt = -1;
    for (const h of HEADINGS) {
      const m = md.indexOf(`\n## ${h}\n`);
      const p = page.indexOf(`<h2>${h}</h2>`);
      assert.ok(m > mdAt, `markdown heading ${h} missing or out of order`);
      assert.ok(p > htmlAt, `HTML heading ${h} missing or out of order`);
      mdAt = m;
      htmlAt = p;
    }
    assert.match(md, /^# Incident report: /);
  });

  it('measures the impact window from opened to resolved', () => {
    assert.equal(report.impact.durationMs, RESOLVED - OPENED);
    assert.equal(report.impact.durationMs, (23 * 60 + 10) * 1000);
    assert.equal(report.impact.start, '2026-01-16T10:00:30.000Z');
    assert.equal(report.impact.end, '2026-01-16T10:23:40.000Z');
    assert.equal(report.impact.ongoing, false);
    const impact = mdSection(md, 'Impact');
    assert.match(impact, /2026-01-16 10:00:30 UTC to 2026-01-16 10:23:40 UTC \(23m10s\)/);
    assert.match(htmlSection(page, 'Impact'), /\(23m10s\)/);
    assert.match(report.summary, /lasted 23m10s/);
  });

  it('reports peak usage, sessions involved and waiting clients from the peak snapshot', () => {
    assert.deepEqual(report.impact.peak, {
      at: '2026-01-16T10:03:00.000Z',
      total: 91,
      usable: 97,
      usage: 91 / 97,
    });
    const impact = mdSection(md, 'Impact');
    assert.match(impact, /91\/97 usable connections \(94%\)/);
    // 43 stuck transactions, the lock chain's two waiters and the long query.
    assert.equal(report.impact.sessionsInvolved, 46);
    assert.match(impact, /Sessions involved:\*\* 46 \(billing-worker 40, /);
    assert.deepEqual(report.impact.waitingClients, { pgbouncer: null, lockWaiters: 2 });
    assert.match(impact, /2 sessions waiting on locks/);
  });

  it('names the idle-in-transaction finding and the code site that held the connections as the root cause', () => {
    assert.equal(report.rootCause.findingId, 'sessions.idle_in_transaction');
    assert.match(report.rootCause.title, /^43 sessions idle in transaction \(oldest 30m\)$/);
    assert.equal(report.rootCause.sitesMatched, 'cause');
    assert.equal(report.rootCause.sites.length, 1, 'pid 1000 is not one of the cause’s sessions');
    const site = 'vitals-api: src/handlers/report.ts:34 held 12 connections for 4m';
    assert.equal(report.rootCause.sites[0]?.text, site);
    const rc = mdSection(md, 'Root cause');
    assert.match(rc, /43 sessions idle in transaction/);
    assert.ok(rc.includes(site), rc);
    assert.ok(!rc.includes('nightly'));
    assert.ok(htmlSection(page, 'Root cause').includes(site));
    assert.equal(
      report.actionItems[0]?.title,
      `Fix vitals-api: src/handlers/report.ts:34 (commit or roll back, and release the connection in a finally block)`,
    );
    // The trigger names the cause's applications, not the lock waiters the other findings named.
    assert.match(
      report.trigger.text,
      /^43 sessions idle in transaction \(oldest 30m\) \(from billing-worker, <img/,
    );
    assert.ok(!report.trigger.text.includes('ledger'));
    assert.ok(report.summary.includes(site));
  });

  it('builds the timeline: opened, escalation with level and who, acknowledgement, actions, notifications, cleared, resolved', () => {
    const rows = report.timeline.map((e) => [e.offset, e.kind, e.actor, e.failed]);
    assert.deepEqual(rows, [
      ['-30:25', 'condition', null, false],
      ['+00:00', 'opened', null, false],
      ['+00:00', 'notification', 'slack', false],
      ['+15:00', 'escalated', 'level 1: Database Team', false],
      ['+15:01', 'notification', 'pagerduty', true],
      ['+15:03', 'notification', 'pagerduty', false],
      ['+16:30', 'acknowledged', 'alice', false],
      ['+17:10', 'action', 'agent', false],
      ['+17:11', 'action', 'agent', false],
      ['+19:30', 'cleared', null, false],
      ['+23:10', 'resolved', 'agent', false],
      ['+23:10', 'notification', 'slack', false],
    ]);
    const tl = mdSection(md, 'Timeline');
    assert.match(tl, /\| 2026-01-16 10:15:30 UTC \| \+15:00 \| escalated \| level 1: Database Team \|/);
    assert.match(tl, /\*\*notification \(failed\)\*\* \| pagerduty \| .*FAILED: HTTP 503/);
    assert.match(tl, /via pagerduty, attempt 2: delivered \|/);
    assert.match(tl, /Terminate pid 2000 \(billing-worker, user billing\): ok/);
    assert.match(htmlSection(page, 'Timeline'), /<tr class="failed">/);
  });

  it('says when the incident was detected relative to the condition', () => {
    assert.equal(report.detection.conditionStartedAt, '2026-01-16T09:30:05.000Z');
    assert.equal(report.detection.delayMs, (30 * 60 + 25) * 1000);
    assert.match(mdSection(md, 'Detection'), /Rule connections\.usage opened the incident .*30m25s after/);
  });

  it('shows the snapshots at open and at peak', () => {
    assert.equal(report.snapshots.open?.total, 88);
    assert.equal(report.snapshots.peak?.total, 91);
    const snaps = mdSection(md, 'Snapshots');
    assert.match(snaps, /### At open: 2026-01-16 10:00:00 UTC/);
    assert.match(snaps, /### At peak: 2026-01-16 10:03:00 UTC/);
    assert.match(snaps, /idle in transaction 43/);
    assert.match(
      snaps,
      /\| billing-worker \| billing \| vitalstream \| 10\.0\.0\.5 \| idle in transaction \| 40 \|/,
    );
  });

  it('says who resolved it and what was done', () => {
    assert.equal(report.resolution.actions.length, 2);
    assert.ok(report.resolution.actions.every((a) => a.by === 'agent' && a.event === 'terminate'));
    assert.match(
      report.resolution.text,
      /^Resolved at 2026-01-16 10:23:40 UTC automatically after the condition cleared, 23m10s after it opened\. Acknowledged by alice after 16m30s\. .*the agent terminated 2 sessions \(billing-worker\)/,
    );
  });

  it('recommends the timeout, the index advice, a capacity check and the runbook actions that apply', () => {
    const commands = report.actionItems.map((i) => i.command ?? '');
    assert.ok(
      commands.some((c) => c.includes("ALTER SYSTEM SET idle_in_transaction_session_timeout = '5min'")),
    );
    assert.ok(commands.includes('pgwarden indexes --url "$DATABASE_URL"'));
    assert.ok(commands.includes('pgwarden plan --url "$DATABASE_URL" --replicas N --app billing-worker'));
    assert.equal(report.actionItems[0]?.source, 'code');
    const runbook = report.actionItems.filter((i) => i.source === 'runbook').map((i) => i.title);
    assert.ok(runbook.includes('Performance Optimization: Add missing indexes'));
    assert.ok(runbook.includes('Process Improvements: Improve incident response'));
    assert.ok(!runbook.includes('Process Improvements: Add automated recovery'), 'the agent acted');
    // No session-specific terminate statements: they are done, not follow-ups.
    assert.ok(!commands.some((c) => c.includes('pg_terminate_backend')));
    const items = mdSection(md, 'Action items');
    assert.match(items, /```sql\n {3}ALTER SYSTEM SET idle_in_transaction_session_timeout = '5min';/);
    assert.ok(mdSection(md, 'Lessons learned').includes('- [ ] What went well?'));
  });

  it('escapes a hostile application name in HTML and in markdown', () => {
    assert.ok(md.includes(EVIL_ESCAPED), 'the name is shown, as text');
    assert.ok(!md.includes('<img'));
    assert.ok(page.includes(EVIL_ESCAPED));
    assert.ok(!page.includes('<img'));
  });

  it('makes a standalone HTML page: no scripts, no external URLs', () => {
    assert.match(page, /^<!DOCTYPE html>\n<html lang="en">/);
    assert.match(page, /<style>[^<]+<\/style>/);
    assert.match(page, /<\/html>\n$/);
    assert.ok(!/<script/i.test(page));
    assert.ok(!/<(?:link|iframe|object|embed|img|base)\b/i.test(page));
    assert.ok(!/\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i.test(page));
    assert.ok(!/https?:\/\//i.test(page));
    assert.ok(!/url\(/i.test(page));
  });

  it('round-trips through JSON', () => {
    const json = renderReportJson(report);
    assert.deepStrictEqual(JSON.parse(json), report);
    const parsed = JSON.parse(json) as IncidentReport;
    assert.equal(renderReportMarkdown(parsed), md, 'a stored report renders the same');
  });
});

describe('buildReport: hostile text everywhere', () => {
  it('escapes the incident, the timeline, people, notifiers, code sites and audit entries', () => {
    const hostile = buildReport(
      input({
        incident: incident({
          title: `usage high ${EVIL}`,
          acknowledgedBy: EVIL,
          resolvedBy: `"><script>x</script>`,
        }),
        timeline: [
          ...timeline(),
          { incidentId: 'inc-1', at: t('10:18:00'), kind: 'note', text: `note ${EVIL}\n# heading\n\x1b[2J` },
        ],
        notifications: [{ notifier: EVIL, event: 'opened', level: 0, at: OPENED, ok: false, error: EVIL }],
        actions: [
          { ...terminate(2000, '2026-01-16T10:17:40.000Z'), application: EVIL, reason: EVIL, by: EVIL },
        ],
        appHolders: [{ pid: 2000, site: EVIL, heldMillis: 1000, pool: `</code>${EVIL}` }],
      }),
    );
    const md = renderReportMarkdown(hostile);
    const page = renderReportHtml(hostile);
    for (const out of [md, page]) {
      assert.ok(!out.includes('<img'), 'no raw <img');
      assert.ok(!/<script/i.test(out), 'no raw <script');
      assert.ok(!out.includes('\x1b'), 'no raw escape character');
    }
    assert.ok(!md.includes('\n# heading'), 'a newline in a text cannot start a markdown heading');
    assert.ok(page.includes(`usage high ${EVIL_ESCAPED}`));
    assert.ok(page.includes('&quot;&gt;&lt;script&gt;'));
    assert.deepStrictEqual(JSON.parse(renderReportJson(hostile)), hostile);
  });
});

describe('buildReport: what is not known', () => {
  it('reports an unreachable server with no snapshot, still open', () => {
    const report = buildReport({
      incident: incident({
        ruleId: 'server.unreachable',
        title: 'vitalstream unreachable: 53300 too many clients',
        state: 'open',
        acknowledgedAt: null,
        acknowledgedBy: null,
        resolvedAt: null,
        resolvedBy: null,
        escalationLevel: 0,
      }),
      timeline: [
        { incidentId: 'inc-1', at: OPENED, kind: 'opened', text: 'Opened' },
        { incidentId: 'inc-1', at: OPENED + 65_000, kind: 'updated', text: 'still unreachable' },
      ],
    });
    assert.equal(report.impact.ongoing, true);
    assert.equal(report.impact.end, null);
    assert.equal(report.impact.durationMs, 65_000);
    assert.equal(report.rootCause.findingId, null);
    assert.equal(report.detection.delayMs, null);
    assert.equal(report.snapshots.open, null);
    const md = renderReportMarkdown(report);
    for (const h of HEADINGS) assert.ok(md.includes(`\n## ${h}\n`), h);
    assert.match(md, /not resolved yet \(1m05s so far\)/);
    assert.match(md, /Unknown: no snapshot was taken/);
    assert.match(md, /Nobody acknowledged it\./);
    const page = renderReportHtml(report);
    for (const h of HEADINGS) assert.ok(page.includes(`<h2>${h}</h2>`), h);
    assert.deepStrictEqual(JSON.parse(renderReportJson(report)), report);
  });

  it('uses the open snapshot as the peak when there is no later one, and all holders when none match', () => {
    const report = buildReport(
      input({
        peakSnapshot: undefined,
        appHolders: [{ pid: 1000, site: 'src/a.ts:1', heldMillis: 90_000, pool: 'web' }],
      }),
    );
    assert.equal(report.snapshots.peak, null);
    assert.equal(report.snapshots.peakIsOpen, true);
    assert.equal(report.impact.peak?.total, 88);
    assert.equal(report.rootCause.sitesMatched, 'all');
    assert.match(renderReportMarkdown(report), /none matched the sessions above/);
    assert.ok(
      !report.actionItems.some((i) => i.source === 'code'),
      'a holder not behind the cause is no fix',
    );
  });

  it('keeps timeline actions when there is no audit log, and says a person acted for --pid requests', () => {
    const byHand = buildReport(
      input({ actions: [{ ...terminate(2000, '2026-01-16T10:17:40.000Z'), rule: 'requested' }] }),
    );
    assert.equal(byHand.resolution.actions[0]?.by, 'a person (pgwarden kill --pid)');
    assert.ok(byHand.actionItems.some((i) => i.title === 'Process Improvements: Add automated recovery'));
    const noAudit = buildReport(input({ actions: undefined }));
    const actions = noAudit.timeline.filter((e) => e.kind === 'action');
    assert.deepEqual(
      actions.map((e) => e.text),
      ['pid 2000: cancel ok, terminate ok'],
    );
  });
});

describe('formatOffset', () => {
  it('prints +mm:ss, minutes uncapped, negative before the start', () => {
    assert.equal(formatOffset(0), '+00:00');
    assert.equal(formatOffset(250_000), '+04:10');
    assert.equal(formatOffset(75 * 60_000), '+75:00');
    assert.equal(formatOffset(-1_825_000), '-30:25');
  });
});
