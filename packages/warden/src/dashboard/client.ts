/**
 * The dashboard's browser client, served as /dashboard.js. Plain ES2020, no framework. Every piece of
 * text that comes from a database (queries, application names, users, titles) goes in through
 * textContent / createTextNode, never innerHTML: a query `<img src=x onerror=…>` shows as text.
 */
export const DASHBOARD_JS = `'use strict';
(function () {
  var SVG = 'http://www.w3.org/2000/svg';
  var TOKEN_KEY = 'pgwarden.token';
  var COLORS = ['#2563eb', '#db2777', '#059669', '#d97706', '#7c3aed', '#0891b2'];
  var HISTORY = 300;

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, String(attrs[k]));
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    for (var k in attrs) node.setAttribute(k, String(attrs[k]));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function age(s) {
    if (s === null || s === undefined) return '';
    if (s < 60) return s.toFixed(1) + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + 'm ' + String(Math.floor(s % 60)).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  }
  function time(ms) { return ms ? new Date(ms).toLocaleTimeString() : ''; }
  function pct(x) { return (x * 100).toFixed(0) + '%'; }

  // Token: typed once, kept for the tab's session only.
  var tokenInput = $('token');
  tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || '';
  tokenInput.addEventListener('input', function () {
    if (tokenInput.value) sessionStorage.setItem(TOKEN_KEY, tokenInput.value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });

  // Header and chart, from the server-sent "state" events.
  var history = {};
  function renderStatus(state) {
    var box = $('databases');
    clear(box);
    $('mode').textContent = state.mode;
    state.databases.forEach(function (db) {
      var status = db.unreachable ? 'unreachable' : db.status || 'waiting';
      var c = db.connections;
      var card = el('div', { class: 'db status-' + status.replace(/[^a-z]/g, '') }, [
        el('div', { class: 'db-name' }, [db.name]),
        el('div', { class: 'db-status' }, [status]),
        el('div', { class: 'db-conn' }, c ? [el('strong', null, [c.total]), ' / ' + c.usable + ' (' + pct(c.usage) + ')'] : ['no data']),
        el('div', { class: 'db-headline' }, [db.unreachable ? db.unreachable.message : db.headline || '']),
        el('ul', { class: 'db-rules' }, (db.rules || []).map(function (r) {
          var secs = Math.max(0, Math.round((Date.now() - r.since) / 1000));
          return el('li', { class: 'rule-' + r.status }, [r.ruleId + ' ' + r.status + ' for ' + secs + 's']);
        })),
      ]);
      box.appendChild(card);
      if (c && db.at) {
        var h = (history[db.name] = history[db.name] || []);
        if (!h.length || h[h.length - 1].at !== db.at) h.push({ at: db.at, total: c.total, usable: c.usable });
        if (h.length > HISTORY) h.shift();
      }
    });
    renderChart();
  }
  function renderChart() {
    var chart = $('chart');
    clear(chart);
    var W = 720, H = 180, L = 44, R = 90, T = 12, B = 22;
    chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    var names = Object.keys(history);
    var t0 = Infinity, t1 = -Infinity, top = 1;
    names.forEach(function (n) {
      history[n].forEach(function (p) {
        t0 = Math.min(t0, p.at); t1 = Math.max(t1, p.at);
        top = Math.max(top, p.total / Math.max(1, p.usable));
      });
    });
    top = Math.max(1.1, top * 1.05);
    var y = function (f) { return T + (H - T - B) * (1 - f / top); };
    var x = function (t) { return t1 > t0 ? L + (W - L - R) * ((t - t0) / (t1 - t0)) : W - R; };
    [0, 0.25, 0.5, 0.75].forEach(function (f) {
      chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y(f), y2: y(f), class: 'grid' }));
      chart.appendChild(svg('text', { x: L - 6, y: y(f) + 4, 'text-anchor': 'end', class: 'axis' }, pct(f)));
    });
    chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y(1), y2: y(1), class: 'limit' }));
    var usable = names.length ? history[names[0]][history[names[0]].length - 1].usable : null;
    chart.appendChild(svg('text', { x: L - 6, y: y(1) + 4, 'text-anchor': 'end', class: 'axis limit-label' }, '100%'));
    chart.appendChild(
      svg('text', { x: W - R + 6, y: y(1) + 4, class: 'limit-label' }, usable === null ? 'usable' : usable + ' usable'),
    );
    if (!names.length) {
      chart.appendChild(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'waiting for data…'));
      return;
    }
    names.forEach(function (n, i) {
      var pts = history[n].map(function (p) {
        return x(p.at).toFixed(1) + ',' + y(p.total / Math.max(1, p.usable)).toFixed(1);
      });
      var color = COLORS[i % COLORS.length];
      chart.appendChild(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: color, 'stroke-width': 2 }));
      var last = history[n][history[n].length - 1];
      chart.appendChild(
        svg('text', { x: W - R + 6, y: y(last.total / Math.max(1, last.usable)) + 14, fill: color, class: 'series' }, n + ' ' + last.total),
      );
    });
    chart.appendChild(svg('text', { x: L, y: H - 4, class: 'axis' }, time(t0)));
    chart.appendChild(svg('text', { x: W - R, y: H - 4, 'text-anchor': 'end', class: 'axis' }, time(t1)));
  }
  function connect() {
    var source = new EventSource('/api/events');
    source.addEventListener('state', function (e) {
      $('live').textContent = 'live';
      $('live').className = 'live on';
      renderStatus(JSON.parse(e.data));
    });
    source.onerror = function () {
      $('live').textContent = 'reconnecting…';
      $('live').className = 'live off';
    };
  }

  // Sessions and lock chains, polled every second.
  var sortKey = 'xactAgeSeconds';
  var sortDesc = true;
  var lastSessions = { databases: [] };
  document.querySelectorAll('#sessions th[data-sort]').forEach(function (th) {
    th.addEventListener('click', function () {
      var key = th.getAttribute('data-sort');
      if (key === sortKey) sortDesc = !sortDesc;
      else { sortKey = key; sortDesc = true; }
      renderSessions();
    });
  });
  $('filter').addEventListener('input', function () { renderSessions(); });
  function renderSessions() {
    var q = $('filter').value.trim().toLowerCase();
    var rows = [];
    lastSessions.databases.forEach(function (db) {
      db.sessions.forEach(function (s) { rows.push({ db: db.name, s: s }); });
    });
    var total = rows.length;
    if (q) rows = rows.filter(function (r) {
      return [r.s.state, r.s.application, r.s.user].some(function (v) { return (v || '').toLowerCase().indexOf(q) >= 0; });
    });
    rows.sort(function (a, b) {
      var av = a.s[sortKey], bv = b.s[sortKey];
      var d = typeof av === 'string' || typeof bv === 'string'
        ? String(av || '').localeCompare(String(bv || ''))
        : (av === null ? -1 : av) - (bv === null ? -1 : bv);
      return sortDesc ? -d : d;
    });
    document.querySelectorAll('#sessions th[data-sort]').forEach(function (th) {
      var key = th.getAttribute('data-sort');
      th.setAttribute('aria-sort', key === sortKey ? (sortDesc ? 'descending' : 'ascending') : 'none');
    });
    var body = $('sessions-body');
    clear(body);
    rows.forEach(function (r) {
      var s = r.s;
      var wait = s.waitEvent ? (s.waitEventType ? s.waitEventType + ': ' : '') + s.waitEvent : '';
      body.appendChild(
        el('tr', { 'data-pid': s.pid, class: 'state-' + String(s.state).replace(/[^a-z]/g, '') }, [
          el('td', null, [r.db]),
          el('td', { class: 'num' }, [s.pid]),
          el('td', null, [s.user || '']),
          el('td', { class: 'app' }, [s.application || '']),
          el('td', { class: 'state' }, [s.state]),
          el('td', { class: 'num' }, [age(s.xactAgeSeconds)]),
          el('td', { class: 'num' }, [age(s.stateAgeSeconds)]),
          el('td', null, [wait + (s.blockedBy && s.blockedBy.length ? ' (blocked by ' + s.blockedBy.join(', ') + ')' : '')]),
          el('td', { class: 'query' }, [s.query || '']),
        ]),
      );
    });
    $('sessions-count').textContent = rows.length === total ? total + ' sessions' : rows.length + ' of ' + total + ' sessions';
    renderLocks();
    renderSlow();
    renderPgBouncer();
    renderAppPools();
  }
  function ms(x) { return x === null || x === undefined ? '' : Number(x).toFixed(x < 10 ? 2 : 1); }
  function emptyRow(body, cols, text) {
    body.appendChild(el('tr', null, [el('td', { colspan: cols, class: 'muted' }, [text])]));
  }
  function renderSlow() {
    var body = $('slow-body');
    clear(body);
    var any = false;
    lastSessions.databases.forEach(function (db) {
      (db.slowQueries || []).forEach(function (q) {
        any = true;
        body.appendChild(
          el('tr', null, [
            el('td', null, [db.name]),
            el('td', { class: 'num' }, [ms(q.meanMs)]),
            el('td', { class: 'num' }, [q.calls]),
            el('td', { class: 'num' }, [ms(q.totalMs)]),
            el('td', { class: 'query' }, [q.query || '']),
          ]),
        );
      });
    });
    if (!any) emptyRow(body, 5, 'No statements (pg_stat_statements not installed, or nothing run yet).');
  }
  function renderPgBouncer() {
    var body = $('pgbouncer-body');
    clear(body);
    var any = false;
    lastSessions.databases.forEach(function (db) {
      var b = db.pgbouncer;
      if (!b) return;
      if (b.error) { any = true; body.appendChild(el('tr', null, [el('td', null, [db.name]), el('td', { colspan: 6, class: 'error' }, [b.error])])); }
      (b.pools || []).forEach(function (p) {
        any = true;
        body.appendChild(
          el('tr', null, [
            el('td', null, [db.name]),
            el('td', null, [p.database]),
            el('td', null, [p.user]),
            el('td', { class: 'num' }, [p.clActive]),
            el('td', { class: 'num' }, [p.clWaiting]),
            el('td', { class: 'num' }, [p.svActive]),
            el('td', { class: 'num' }, [age(p.maxWaitSeconds)]),
          ]),
        );
      });
    });
    if (!any) emptyRow(body, 7, 'No PgBouncer configured.');
  }
  function renderAppPools() {
    var box = $('apppools');
    clear(box);
    var any = false;
    lastSessions.databases.forEach(function (db) {
      (db.appPools || []).forEach(function (p) {
        any = true;
        var c = p.counts || {};
        var rows = (p.checkouts || []).map(function (k) {
          return el('tr', null, [
            el('td', { class: 'num' }, [k.pid === null ? '' : k.pid]),
            el('td', { class: 'site' }, [k.site || '']),
            el('td', { class: 'num' }, [age(k.heldMillis / 1000)]),
            el('td', { class: 'query' }, [k.lastQuery || '']),
          ]);
        });
        if (!rows.length) rows.push(el('tr', null, [el('td', { colspan: 4, class: 'muted' }, ['No checkouts.'])]));
        box.appendChild(
          el('div', { class: 'pool' }, [
            el('div', { class: 'pool-head' }, [
              db.name + ' · ' + p.name + ': ' + (c.active || 0) + ' / ' + p.max + ' in use (' + pct(p.usage || 0) + '), ' +
                (c.waiting || 0) + ' waiting, ' + (c.idle || 0) + ' idle',
            ]),
            el('table', null, [
              el('thead', null, [el('tr', null, [el('th', null, ['pid']), el('th', null, ['Code site']), el('th', null, ['Held']), el('th', null, ['Last query'])])]),
              el('tbody', null, rows),
            ]),
          ]),
        );
      });
    });
    if (!any) box.appendChild(el('p', { class: 'muted' }, ['No application pools reported.']));
  }
  function renderLocks() {
    var box = $('locks');
    clear(box);
    var any = false;
    lastSessions.databases.forEach(function (db) {
      var byPid = {};
      db.sessions.forEach(function (s) { byPid[s.pid] = s; });
      db.locks.forEach(function (chain) {
        any = true;
        var children = {};
        chain.edges.forEach(function (e) { (children[e.holder] = children[e.holder] || []).push(e.waiter); });
        var seen = {};
        function node(pid) {
          var s = byPid[pid];
          var label = 'pid ' + pid + (s ? ' · ' + (s.application || '?') + ' · ' + s.state + ' · ' + age(s.xactAgeSeconds) : '');
          var li = el('li', null, [el('span', { class: 'pid' }, [label])]);
          if (s && s.query) li.appendChild(el('div', { class: 'query' }, [s.query]));
          if (!seen[pid] && children[pid]) {
            seen[pid] = true;
            li.appendChild(el('ul', null, children[pid].map(node)));
          }
          return li;
        }
        box.appendChild(
          el('div', { class: 'chain' }, [
            el('div', { class: 'chain-head' }, [db.name + ': ' + chain.blockedPids.length + ' blocked, depth ' + chain.depth]),
            el('ul', { class: 'tree' }, [node(chain.rootPid)]),
          ]),
        );
      });
    });
    if (!any) box.appendChild(el('p', { class: 'muted' }, ['No lock waits.']));
  }
  function pollSessions() {
    fetch('/api/sessions')
      .then(function (r) { return r.json(); })
      .then(function (data) { lastSessions = data; renderSessions(); })
      .catch(function () {})
      .finally(function () { setTimeout(pollSessions, 1000); });
  }

  // Incidents, with acknowledge / resolve / execute remedy and a timeline per incident.
  // The rules whose incidents pgwarden can remedy (the agent's REMEDIABLE table).
  var REMEDIABLE = { 'sessions.idle_in_transaction': 1, 'sessions.long_running': 1, 'locks.blocking_chain': 1 };
  var errors = {};
  var results = {};
  var expanded = {};
  var lastIncidents = '';
  function act(id, action) {
    var headers = {};
    var token = tokenInput.value.trim();
    if (token) headers.authorization = 'Bearer ' + token;
    return fetch('/api/incidents/' + encodeURIComponent(id) + '/' + action, { method: 'POST', headers: headers })
      .then(function (r) {
        return r.text().then(function (text) {
          if (r.ok) {
            delete errors[id];
            if (action === 'execute') {
              try { results[id] = JSON.stringify(JSON.parse(text)); } catch (e) { results[id] = text; }
            }
          } else {
            errors[id] = r.status + ' ' + text;
            delete results[id];
          }
        });
      })
      .catch(function (err) { errors[id] = String(err); delete results[id]; })
      .then(function () { lastIncidents = ''; return pollIncidents(false); });
  }
  function execute(i) {
    var ok = window.confirm('Execute the remedy for "' + i.title + '" on ' + i.database + '? It cancels, then terminates, the sessions the rule names.');
    if (ok) act(i.id, 'execute');
  }
  function toggle(id) {
    if (expanded[id]) delete expanded[id];
    else expanded[id] = { loading: true };
    lastIncidents = '';
    pollIncidents(false);
  }
  function loadDetail(id) {
    return fetch('/api/incidents/' + encodeURIComponent(id))
      .then(function (r) {
        return r.json().then(function (body) {
          expanded[id] = r.ok ? { data: body } : { error: r.status + ' ' + (body.error || '') };
        });
      })
      .catch(function (err) { expanded[id] = { error: String(err) }; });
  }
  function timelineRow(id) {
    var d = expanded[id];
    var cell = el('td', { colspan: 6 });
    if (d.error) cell.appendChild(el('div', { class: 'error' }, [d.error]));
    else if (!d.data) cell.appendChild(el('span', { class: 'muted' }, ['loading…']));
    else {
      var items = d.data.timeline.map(function (t) {
        return el('li', null, [el('span', { class: 'muted' }, [time(t.at) + ' ']), el('span', { class: 'kind' }, [t.kind]), t.text]);
      });
      if (!items.length) items.push(el('li', { class: 'muted' }, ['No timeline entries.']));
      cell.appendChild(el('ul', { class: 'timeline' }, items));
      if (d.data.notifications && d.data.notifications.length) {
        cell.appendChild(el('div', { class: 'muted' }, ['Notifications']));
        cell.appendChild(
          el('ul', { class: 'timeline' }, d.data.notifications.map(function (n) {
            return el('li', null, [
              el('span', { class: 'muted' }, [time(n.at) + ' ']),
              n.notifier + ' · ' + n.event + ' · ' + (n.ok ? 'sent' : 'failed') + (n.detail ? ' · ' + n.detail : ''),
            ]);
          })),
        );
      }
    }
    return el('tr', { class: 'timeline-row', 'data-timeline-for': id }, [cell]);
  }
  function renderIncidents(list) {
    var box = $('incidents-body');
    clear(box);
    if (!list.length) {
      box.appendChild(el('tr', null, [el('td', { colspan: 6, class: 'muted' }, ['No incidents.'])]));
      return;
    }
    list.forEach(function (i) {
      var buttons = el('td', { class: 'actions' });
      if (i.state === 'open') {
        var ack = el('button', { type: 'button', class: 'ack' }, ['Acknowledge']);
        ack.addEventListener('click', function () { act(i.id, 'ack'); });
        buttons.appendChild(ack);
      }
      if (i.state !== 'resolved') {
        var res = el('button', { type: 'button', class: 'resolve' }, ['Resolve']);
        res.addEventListener('click', function () { act(i.id, 'resolve'); });
        buttons.appendChild(res);
      }
      if (i.state !== 'resolved' && REMEDIABLE[i.ruleId]) {
        var exe = el('button', { type: 'button', class: 'execute' }, ['Execute remedy…']);
        exe.addEventListener('click', function () { execute(i); });
        buttons.appendChild(exe);
      }
      var report = el('a', { href: '/api/incidents/' + encodeURIComponent(i.id) + '/report?format=html', target: '_blank', rel: 'noopener' }, ['report']);
      var title = el('td', null, [el('div', null, [i.title]), el('div', { class: 'muted' }, [i.ruleId + (i.summary && i.summary !== i.title ? ' · ' + i.summary : '')])]);
      if (errors[i.id]) title.appendChild(el('div', { class: 'error', role: 'alert' }, [errors[i.id]]));
      if (results[i.id]) title.appendChild(el('div', { class: 'result', role: 'status' }, [results[i.id]]));
      var row = el('tr', { 'data-incident-id': i.id, class: 'incident-row incident-' + i.state, 'aria-expanded': expanded[i.id] ? 'true' : 'false', title: 'show or hide the timeline' }, [
        el('td', null, [el('span', { class: 'sev sev-' + i.severity }, [i.severity])]),
        el('td', { class: 'istate' }, [i.state + (i.acknowledgedBy ? ' by ' + i.acknowledgedBy : '')]),
        el('td', null, [i.database]),
        title,
        el('td', { class: 'num' }, [time(i.openedAt)]),
        el('td', null, [buttons, report]),
      ]);
      row.addEventListener('click', function (e) {
        if (e.target && e.target.closest && e.target.closest('button, a')) return;
        toggle(i.id);
      });
      box.appendChild(row);
      if (expanded[i.id]) box.appendChild(timelineRow(i.id));
    });
  }
  function pollIncidents(again) {
    return fetch('/api/incidents')
      .then(function (r) { return r.json(); })
      .then(function (list) {
        return Promise.all(Object.keys(expanded).map(loadDetail)).then(function () { return list; });
      })
      .then(function (list) {
        var key = JSON.stringify(list) + JSON.stringify(errors) + JSON.stringify(results) + JSON.stringify(expanded);
        if (key !== lastIncidents) { lastIncidents = key; renderIncidents(list); }
      })
      .catch(function () {})
      .finally(function () { if (again) setTimeout(function () { pollIncidents(true); }, 1000); });
  }

  renderChart();
  connect();
  pollSessions();
  pollIncidents(true);
})();
`;
