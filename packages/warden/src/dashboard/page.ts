/**
 * The agent's dashboard: one page served at `GET /` with its script at `GET /dashboard.js`. No CDN,
 * no external assets. The page's Content-Security-Policy allows only same-origin scripts, so even a
 * slip into innerHTML could not run an inline handler; the client never uses innerHTML anyway.
 */
export { DASHBOARD_JS } from './client.js';

export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CSS = `
:root { color-scheme: light; --fg: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f8fafc; --card: #fff;
  --ok: #059669; --warn: #d97706; --crit: #dc2626; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 12px 24px; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header .spacer { flex: 1; }
header label { color: var(--muted); font-size: 13px; }
input { font: inherit; padding: 5px 8px; border: 1px solid #cbd5e1; border-radius: 6px; }
main { padding: 16px 24px; display: grid; gap: 16px; max-width: 1400px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
section h2 { font-size: 15px; margin: 0 0 10px; display: flex; gap: 12px; align-items: baseline; }
.muted, section h2 .muted { color: var(--muted); font-weight: normal; font-size: 13px; }
.live { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #e5e7eb; }
.live.on { background: #d1fae5; color: #065f46; } .live.off { background: #fee2e2; color: #991b1b; }
#databases { display: flex; flex-wrap: wrap; gap: 12px; }
.db { border: 1px solid var(--line); border-left: 5px solid var(--muted); border-radius: 8px; padding: 8px 12px; min-width: 220px; }
.db-name { font-weight: 600; } .db-status { text-transform: uppercase; font-size: 12px; letter-spacing: .04em; }
.db-conn { font-size: 20px; font-variant-numeric: tabular-nums; } .db-headline { color: var(--muted); font-size: 13px; max-width: 420px; }
.db-rules { list-style: none; margin: 4px 0 0; padding: 0; font-size: 12px; } .db-rules .rule-pending { color: var(--warn); } .db-rules .rule-firing { color: var(--crit); font-weight: 600; } .db-rules .rule-clearing { color: var(--muted); }
.status-ok { border-left-color: var(--ok); } .status-ok .db-status { color: var(--ok); }
.status-warning, .status-warn { border-left-color: var(--warn); } .status-warning .db-status, .status-warn .db-status { color: var(--warn); }
.status-critical, .status-unreachable { border-left-color: var(--crit); }
.status-critical .db-status, .status-unreachable .db-status { color: var(--crit); }
#chart { width: 100%; max-width: 1100px; height: auto; display: block; }
#chart .grid { stroke: var(--line); } #chart .limit { stroke: var(--crit); stroke-dasharray: 6 4; }
#chart text { font-size: 11px; fill: var(--muted); } #chart .limit-label { fill: var(--crit); } #chart .series { font-weight: 600; font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; white-space: nowrap; }
th[data-sort] { cursor: pointer; user-select: none; } th[data-sort]:hover { color: var(--accent); }
th[aria-sort="descending"]::after { content: " \\25BC"; } th[aria-sort="ascending"]::after { content: " \\25B2"; }
td.num { font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; }
td.query, div.query { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-word; max-width: 560px; }
tr.state-idleintransaction td.state, tr.state-idleintransactionaborted td.state { color: var(--warn); font-weight: 600; }
tr.state-active td.state { color: var(--accent); }
.tools { display: flex; gap: 12px; align-items: center; margin-bottom: 8px; }
ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 18px; border-left: 2px solid var(--line); }
ul.tree li { margin: 4px 0; } .chain { margin-bottom: 10px; } .chain-head { font-weight: 600; margin-bottom: 4px; }
.pid { font-variant-numeric: tabular-nums; }
.sev { font-size: 12px; padding: 1px 7px; border-radius: 10px; background: #fef3c7; color: #92400e; }
.sev-critical { background: #fee2e2; color: #991b1b; }
tr.incident-resolved { color: var(--muted); }
tr.incident-row { cursor: pointer; } tr.incident-row:hover td { background: #f1f5f9; }
tr.timeline-row td { background: #f8fafc; } ul.timeline { margin: 0; padding-left: 18px; }
ul.timeline li { margin: 2px 0; } ul.timeline .kind { font-weight: 600; margin-right: 6px; }
.result { margin-top: 4px; font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; color: var(--ok); }
.pool { margin-bottom: 12px; } .pool-head { font-weight: 600; margin-bottom: 4px; }
button { font: inherit; font-size: 13px; padding: 3px 10px; margin-right: 6px; border-radius: 6px; border: 1px solid #cbd5e1; background: #fff; cursor: pointer; }
button:hover { border-color: var(--accent); color: var(--accent); }
.error { margin-top: 4px; color: var(--crit); font-family: ui-monospace, monospace; font-size: 12px; }
`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgwarden</title>
<style>${CSS}</style>
</head>
<body>
<header>
  <h1>pgwarden</h1>
  <span class="muted">mode <span id="mode">…</span></span>
  <span id="live" class="live">connecting…</span>
  <span class="spacer"></span>
  <label for="token">Token</label>
  <input id="token" type="password" autocomplete="off" placeholder="for acknowledge / resolve">
</header>
<main>
  <section id="status"><h2>Databases</h2><div id="databases"></div></section>
  <section><h2>Connection usage <span class="muted">connections as a share of the usable slots (dashed line = 100%)</span></h2>
    <svg id="chart" role="img" aria-label="connection usage over time"></svg></section>
  <section><h2>Incidents</h2>
    <table id="incidents"><thead><tr><th>Severity</th><th>State</th><th>Database</th><th>Incident</th><th>Opened</th><th></th></tr></thead>
    <tbody id="incidents-body"></tbody></table></section>
  <section><h2>Sessions <span id="sessions-count" class="muted"></span></h2>
    <div class="tools"><input id="filter" type="search" placeholder="filter by state, application or user" aria-label="filter sessions"></div>
    <table id="sessions"><thead><tr><th>Database</th><th>pid</th><th data-sort="user">User</th><th data-sort="application">Application</th><th data-sort="state">State</th>
      <th data-sort="xactAgeSeconds">Xact age</th><th data-sort="stateAgeSeconds">State age</th><th>Wait</th><th>Query</th></tr></thead>
    <tbody id="sessions-body"></tbody></table></section>
  <section><h2>Lock chains</h2><div id="locks"></div></section>
  <section><h2>Slow queries <span class="muted">pg_stat_statements, slowest mean first</span></h2>
    <table id="slow"><thead><tr><th>Database</th><th>Mean ms</th><th>Calls</th><th>Total ms</th><th>Query</th></tr></thead>
    <tbody id="slow-body"></tbody></table></section>
  <section><h2>PgBouncer</h2>
    <table id="pgbouncer"><thead><tr><th>Database</th><th>Pool database</th><th>User</th><th>cl_active</th><th>cl_waiting</th>
      <th>sv_active</th><th>maxwait</th></tr></thead>
    <tbody id="pgbouncer-body"></tbody></table></section>
  <section><h2>Application pools</h2><div id="apppools"></div></section>
</main>
<script src="/dashboard.js"></script>
</body>
</html>
`;
