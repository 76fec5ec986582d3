// The incident state machine on a FakeClock (never sleeping): dedup, the runbook's escalation at 15,
// 30 and 60 minutes, acknowledgement, auto-resolve, finality, policy snapshots, a restart that
// continues where the previous agent stopped, and an acknowledgement that survives kill -9.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FakeClock } from '@pgwarden/testkit';
import { active, makeSnapshot } from '../snapshot.fixture.js';
import type { Snapshot } from '../snapshot.js';
import {
  AUTO_RESOLVER,
  DEFAULT_ESCALATION_POLICY,
  IncidentError,
  IncidentManager,
  type IncidentManagerOptions,
  notifiersFor,
} from './incidents.js';
import { Store } from './store.js';
import type { AlertEvent, EscalationLevel, Incident, Notification } from './types.js';

const T0 = Date.UTC(2026, 0, 16, 10, 0, 0);
const SECOND = 1000;
const MINUTE = 60 * SECOND;

const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-incidents-'));
  dirs.push(dir);
  return path.join(dir, 'pgwarden.db');
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

interface Sent {
  incident: Incident;
  notification: Notification;
}

function setup(options: Partial<IncidentManagerOptions> & { file?: string; clock?: FakeClock } = {}) {
  const clock = options.clock ?? new FakeClock({ start: T0 });
  const store = options.store ?? new Store(options.file ?? ':memory:', { clock });
  const sent: Sent[] = [];
  const manager = new IncidentManager({
    notify: (incident, notification) => {
      sent.push({ incident, notification });
    },
    ...options,
    store,
    clock,
  });
  /** Escalations sent so far: [minutes since T0, level, notifiers]. */
  const escalations = () =>
    sent
      .filter((s) => s.notification.event === 'escalated')
      .map((s) => [
        (s.notification.at - T0) / MINUTE,
        s.notification.level,
        notifiersFor(s.incident, s.notification),
      ]);
  /** The watch loop: tick once a second for `ms`. */
  const run = (ms: number) => {
    for (let t = 0; t < ms; t += SECOND) {
      clock.advance(SECOND);
      manager.tick();
    }
  };
  return { clock, store, manager, sent, escalations, run };
}

function firing(fields: Partial<AlertEvent> = {}): AlertEvent {
  return {
    type: 'firing',
    ruleId: 'connections.usage',
    database: 'main',
    severity: 'warning',
    summary: 'Connection usage 92% (89/97 usable slots)',
    value: 0.92,
    at: T0,
    ...fields,
  };
}

function cleared(fields: Partial<AlertEvent> = {}): AlertEvent {
  return firing({ type: 'resolved', summary: 'Connection usage back to 40%', value: 0.4, ...fields });
}

function must<T>(value: T | undefined): T {
  assert.ok(value !== undefined);
  return value;
}

describe('IncidentManager: opening and dedup', () => {
  it('two firings of one rule on one database make one incident; another database or rule makes another', () => {
    const { manager, store, sent, clock } = setup();
    const a = must(manager.onAlert(firing(), makeSnapshot([active(1, 10)])));
    clock.advance(5 * SECOND);
    const again = must(manager.onAlert(firing({ value: 0.93 })));
    assert.equal(again.id, a.id);
    const other = must(manager.onAlert(firing({ database: 'reports' })));
    const rule = must(
      manager.onAlert(firing({ ruleId: 'sessions.long_running', summary: 'pid 4242 running 15 min' })),
    );
    assert.notEqual(other.id, a.id);
    assert.notEqual(rule.id, a.id);
    assert.notEqual(rule.id, other.id);
    assert.equal(store.incidents().length, 3);

    const opened = sent.filter((s) => s.notification.event === 'opened');
    assert.equal(opened.length, 3, 'one opening notification per incident');
    const first = must(opened[0]).notification;
    assert.deepEqual(first, {
      incidentId: a.id,
      event: 'opened',
      level: 0,
      severity: 'warning',
      database: 'main',
      title: 'Connection usage 92% (89/97 usable slots)',
      summary: 'Connection usage 92% (89/97 usable slots)',
      dedupKey: `pgwarden/main/connections.usage/${a.id}`,
      at: T0,
    });

    const stored = must(store.incident(a.id));
    assert.equal(stored.state, 'open');
    assert.equal(stored.openedAt, T0);
    assert.equal(stored.escalationLevel, 0);
    assert.deepEqual(stored.policy, DEFAULT_ESCALATION_POLICY);
    assert.deepEqual(
      store.snapshots(a.id).map((s) => s.label),
      ['open'],
    );
    assert.deepEqual(
      store.timeline(a.id).map((e) => e.kind),
      ['opened'],
      'a repeated firing with nothing new does not clutter the timeline',
    );
  });

  it('a resolved event with no live incident does nothing', () => {
    const { manager, store, sent } = setup();
    assert.equal(manager.onAlert(cleared()), undefined);
    assert.equal(store.incidents().length, 0);
    assert.equal(sent.length, 0);
  });

  it('severity only rises; the peak snapshot is replaced only by a higher value', () => {
    const { manager, store, clock } = setup();
    const snap = (n: number): Snapshot =>
      makeSnapshot(Array.from({ length: n }, (_, i) => active(100 + i, 5)));
    const inc = must(manager.onAlert(firing({ value: 0.9 }), snap(1)));
    clock.advance(MINUTE);
    manager.onAlert(firing({ severity: 'critical', value: 0.97, summary: 'usage 97%' }), snap(2));
    clock.advance(MINUTE);
    manager.onAlert(firing({ severity: 'warning', value: 0.95 }), snap(3));
    const now = must(store.incident(inc.id));
    assert.equal(now.severity, 'critical');
    assert.equal(now.peakValue, 0.97);
    assert.equal(now.title, 'Connection usage 92% (89/97 usable slots)', 'the title is the opening summary');
    const snaps = store.snapshots(inc.id);
    assert.deepEqual(
      snaps.map((s) => [s.label, s.value, s.snapshot.sessions.length, s.at]),
      [
        ['open', 0.9, 1, T0],
        ['peak', 0.97, 2, T0 + MINUTE],
      ],
    );
    const updated = store.timeline(inc.id).filter((e) => e.kind === 'updated');
    assert.equal(updated.length, 1);
    assert.match(must(updated[0]).text, /severity raised to critical/);
  });
});

describe('IncidentManager: escalation', () => {
  it('escalates at exactly 15, 30 and 60 minutes, to the runbook levels and notifiers', () => {
    const { manager, store, escalations, run, clock } = setup();
    const inc = must(manager.onAlert(firing()));
    clock.advance(15 * MINUTE - 1);
    manager.tick();
    assert.deepEqual(escalations(), [], 'not a millisecond early');
    clock.advance(1);
    manager.tick();
    assert.deepEqual(escalations(), [[15, 1, ['database-team']]]);
    run(61 * MINUTE - 15 * MINUTE);
    assert.deepEqual(escalations(), [
      [15, 1, ['database-team']],
      [30, 2, ['infra-lead']],
      [60, 3, ['vp-engineering']],
    ]);
    const stored = must(store.incident(inc.id));
    assert.equal(stored.escalationLevel, 3);
    const timeline = store.timeline(inc.id).filter((e) => e.kind === 'escalated');
    assert.deepEqual(
      timeline.map((e) => [(e.at - T0) / MINUTE, (e.data as { level: number }).level]),
      [
        [15, 1],
        [30, 2],
        [60, 3],
      ],
    );
    assert.match(must(timeline[1]).text, /level 2 \(Infrastructure Lead, after 30 min\): infra-lead/);
    run(2 * 60 * MINUTE);
    assert.equal(escalations().length, 3, 'the last level is paged once');
  });

  it('the watch loop ticking every second pages each level exactly once', () => {
    const { manager, escalations, run } = setup();
    manager.onAlert(firing());
    run(90 * MINUTE);
    assert.deepEqual(
      escalations().map(([m, level]) => [m, level]),
      [
        [15, 1],
        [30, 2],
        [60, 3],
      ],
    );
  });

  it('acknowledgement stops escalation and is announced at the level reached', () => {
    const { manager, store, sent, escalations, run } = setup();
    const inc = must(manager.onAlert(firing()));
    run(20 * MINUTE);
    assert.equal(escalations().length, 1);
    const acked = manager.acknowledge(inc.id, 'ana');
    assert.equal(acked.state, 'acknowledged');
    assert.equal(acked.acknowledgedBy, 'ana');
    assert.equal(acked.acknowledgedAt, T0 + 20 * MINUTE);
    const note = must(sent.at(-1)).notification;
    assert.equal(note.event, 'acknowledged');
    assert.equal(note.level, 1);
    run(3 * 60 * MINUTE);
    assert.equal(escalations().length, 1, 'no level 2 or 3 after the acknowledgement');
    assert.equal(must(store.incident(inc.id)).escalationLevel, 1);
    assert.deepEqual(
      store.timeline(inc.id).map((e) => e.kind),
      ['opened', 'escalated', 'acknowledged'],
    );
  });

  it('does not page the next level while the condition is clear, and resumes if it comes back', () => {
    const { manager, escalations, run, clock } = setup({ autoResolveAfterMillis: 10 * MINUTE });
    manager.onAlert(firing());
    run(10 * MINUTE);
    manager.onAlert(cleared());
    run(8 * MINUTE); // 18 min: level 1 would have been due at 15
    assert.deepEqual(escalations(), []);
    manager.onAlert(firing({ at: clock.now() }));
    manager.tick();
    assert.deepEqual(escalations(), [[18, 1, ['database-team']]]);
  });
});

describe('IncidentManager: transitions', () => {
  it('refuses to acknowledge a resolved incident, an acknowledged one, or an unknown id', () => {
    const { manager, sent } = setup();
    const inc = must(manager.onAlert(firing()));
    manager.acknowledge(inc.id, 'ana');
    assert.throws(
      () => manager.acknowledge(inc.id, 'bob'),
      (err: unknown) =>
        err instanceof IncidentError &&
        err.code === 'invalid_transition' &&
        /already acknowledged by ana/.test(err.message),
    );
    const resolved = manager.resolve(inc.id, 'ana', 'killed the report job');
    assert.equal(resolved.state, 'resolved');
    assert.equal(resolved.resolvedBy, 'ana');
    assert.equal(must(sent.at(-1)).notification.event, 'resolved');
    const before = sent.length;
    assert.throws(
      () => manager.acknowledge(inc.id, 'bob'),
      (err: unknown) =>
        err instanceof IncidentError &&
        err.code === 'invalid_transition' &&
        err.message ===
          `cannot acknowledge incident ${inc.id}: it is resolved by ana; a resolved incident is final`,
    );
    assert.throws(() => manager.resolve(inc.id, 'bob', 'again'), /already resolved by ana/);
    assert.throws(
      () => manager.acknowledge('nope', 'bob'),
      (err: unknown) =>
        err instanceof IncidentError && err.code === 'not_found' && /no incident "nope"/.test(err.message),
    );
    assert.throws(() => manager.resolve('nope', 'bob', 'x'), { name: 'IncidentError', code: 'not_found' });
    assert.throws(() => manager.recordAction('nope', 'cancel 1'), { code: 'not_found' });
    assert.equal(sent.length, before, 'a refused transition notifies nobody');
  });

  it('a resolved incident is final: the next firing opens a new incident', () => {
    const { manager, store, clock, run } = setup();
    const first = must(manager.onAlert(firing()));
    manager.resolve(first.id, 'ana', 'fixed');
    clock.advance(MINUTE);
    const second = must(manager.onAlert(firing()));
    assert.notEqual(second.id, first.id);
    assert.ok(second.id > first.id, 'ids sort by opening time');
    assert.equal(must(store.incident(first.id)).state, 'resolved');
    // Auto-resolved ones too.
    manager.onAlert(cleared());
    run(5 * MINUTE);
    assert.equal(must(store.incident(second.id)).state, 'resolved');
    const third = must(manager.onAlert(firing()));
    assert.notEqual(third.id, second.id);
    assert.deepEqual(
      store.incidents().map((i) => [i.id, i.state]),
      [
        [third.id, 'open'],
        [second.id, 'resolved'],
        [first.id, 'resolved'],
      ],
    );
  });

  it('auto-resolves once the condition has been clear for the configured time', () => {
    const { manager, store, sent, clock } = setup({ autoResolveAfterMillis: 5 * MINUTE });
    const inc = must(manager.onAlert(firing()));
    clock.advance(2 * MINUTE);
    const clear = must(manager.onAlert(cleared()));
    assert.equal(clear.clearSince, T0 + 2 * MINUTE);
    assert.equal(clear.state, 'open');
    clock.advance(5 * MINUTE - 1);
    assert.deepEqual(manager.tick(), { escalated: [], resolved: [] });
    assert.equal(must(store.incident(inc.id)).state, 'open');
    clock.advance(1);
    assert.deepEqual(manager.tick(), { escalated: [], resolved: [inc.id] });
    const done = must(store.incident(inc.id));
    assert.equal(done.state, 'resolved');
    assert.equal(done.resolvedBy, AUTO_RESOLVER);
    assert.equal(done.resolvedAt, T0 + 7 * MINUTE);
    assert.equal(must(sent.at(-1)).notification.event, 'resolved');
    assert.deepEqual(
      store.timeline(inc.id).map((e) => e.kind),
      ['opened', 'cleared', 'resolved'],
    );
    assert.match(must(store.timeline(inc.id).at(-1)).text, /condition clear for 5 min/);
  });

  it('a condition that comes back before the auto-resolve time keeps the incident open', () => {
    const { manager, store, clock, run } = setup({ autoResolveAfterMillis: 5 * MINUTE });
    const inc = must(manager.onAlert(firing()));
    clock.advance(MINUTE);
    manager.onAlert(cleared());
    run(4 * MINUTE); // clear for 4 min
    const back = must(manager.onAlert(firing({ value: 0.95 })));
    assert.equal(back.id, inc.id);
    assert.equal(back.clearSince, null);
    run(10 * MINUTE); // t = 15 min: still open, and level 1 is paged on time
    assert.equal(must(store.incident(inc.id)).state, 'open');
    assert.deepEqual(
      store.timeline(inc.id).map((e) => e.kind),
      ['opened', 'cleared', 'updated', 'escalated'],
    );
    assert.match(must(store.timeline(inc.id)[2]).text, /condition back after 4 min clear/);
    // A second clear starts a new full period.
    manager.onAlert(cleared());
    run(5 * MINUTE - SECOND);
    assert.equal(must(store.incident(inc.id)).state, 'open');
    run(SECOND);
    assert.equal(must(store.incident(inc.id)).state, 'resolved');
  });

  it('an acknowledged incident auto-resolves too', () => {
    const { manager, store, clock, run } = setup();
    const inc = must(manager.onAlert(firing()));
    manager.acknowledge(inc.id, 'ana');
    clock.advance(MINUTE);
    manager.onAlert(cleared());
    run(5 * MINUTE);
    assert.equal(must(store.incident(inc.id)).state, 'resolved');
  });

  it('recordAction puts remedy actions on the timeline', () => {
    const { manager, store } = setup();
    const inc = must(manager.onAlert(firing()));
    manager.recordAction(inc.id, 'pid 4242: cancel ok, terminate gone', { pid: 4242, cancel: 'ok' });
    const last = must(store.timeline(inc.id).at(-1));
    assert.deepEqual(last, {
      incidentId: inc.id,
      at: T0,
      kind: 'action',
      text: 'pid 4242: cancel ok, terminate gone',
      data: { pid: 4242, cancel: 'ok' },
    });
  });
});

describe('IncidentManager: policy', () => {
  it('an incident keeps the policy it opened with', () => {
    const levels: EscalationLevel[] = DEFAULT_ESCALATION_POLICY.map((l) => ({
      ...l,
      notifiers: [...l.notifiers],
    }));
    const { manager, store, escalations, run } = setup({ policy: levels });
    const inc = must(manager.onAlert(firing()));
    // Mutating what was passed in, or replacing the manager's policy, changes nothing for it.
    (levels[0] as EscalationLevel).afterMinutes = 1;
    (levels[0] as EscalationLevel).notifiers.push('intruder');
    manager.policy = [{ level: 1, afterMinutes: 2, name: 'Pager', notifiers: ['pager'] }];
    assert.deepEqual(must(store.incident(inc.id)).policy, DEFAULT_ESCALATION_POLICY);
    const later = must(manager.onAlert(firing({ database: 'reports' })));
    assert.deepEqual(must(store.incident(later.id)).policy, [
      { level: 1, afterMinutes: 2, name: 'Pager', notifiers: ['pager'] },
    ]);
    run(16 * MINUTE);
    assert.deepEqual(escalations(), [
      [2, 1, ['pager']],
      [15, 1, ['database-team']],
    ]);
  });

  it('refuses a malformed policy', () => {
    const { manager } = setup();
    assert.throws(() => {
      manager.policy = [
        { level: 1, afterMinutes: 30, name: 'a', notifiers: [] },
        { level: 2, afterMinutes: 15, name: 'b', notifiers: [] },
      ];
    }, /level 2 \(after 15 min\) comes before level 1/);
    assert.throws(() => {
      manager.policy = [{ level: 0, afterMinutes: 0, name: 'a', notifiers: [] }];
    }, /integer >= 1/);
  });
});

describe('IncidentManager: notify failures', () => {
  it('a notifier that throws or rejects does not stop the state machine; the failure is on the timeline', async () => {
    let calls = 0;
    const errors: unknown[] = [];
    const { manager, store, run } = setup({
      notify: (_incident, notification) => {
        calls++;
        if (notification.event === 'opened') throw new Error('webhook down');
        return Promise.reject(new Error(`smtp refused ${notification.event}`));
      },
      onNotifyError: (err) => errors.push(err),
    });
    const inc = must(manager.onAlert(firing()));
    run(15 * MINUTE);
    await manager.drain();
    assert.equal(calls, 2);
    assert.equal(errors.length, 2);
    assert.equal(must(store.incident(inc.id)).escalationLevel, 1, 'not retried by the state machine');
    const failures = store.timeline(inc.id).filter((e) => e.kind === 'notification');
    assert.deepEqual(
      failures.map((e) => e.text),
      [
        "Notification 'opened' (level 0) failed: webhook down",
        "Notification 'escalated' (level 1) failed: smtp refused escalated",
      ],
    );
  });
});

describe('IncidentManager: restart and crash', () => {
  it('a new manager over the same file sends the escalations due during the downtime once, then resumes', () => {
    const file = tempFile();
    const clock = new FakeClock({ start: T0 });
    const a = setup({ file, clock });
    const inc = must(a.manager.onAlert(firing()));
    a.run(10 * MINUTE);
    assert.deepEqual(a.escalations(), []);
    a.store.close(); // manager A is dropped at t = 10 min

    clock.advance(21 * MINUTE); // t = 31 min
    const b = setup({ file, clock });
    b.manager.tick();
    assert.deepEqual(b.escalations(), [
      [31, 1, ['database-team']],
      [31, 2, ['infra-lead']],
    ]);
    b.run(60 * MINUTE - 31 * MINUTE - SECOND); // up to 59:59
    assert.equal(b.escalations().length, 2, 'nothing repeated, nothing early');
    b.run(SECOND); // 60:00
    assert.deepEqual(b.escalations().at(-1), [60, 3, ['vp-engineering']]);
    b.run(30 * MINUTE);
    assert.equal(b.escalations().length, 3);
    assert.deepEqual(
      b.store.timeline(inc.id).map((e) => e.kind),
      ['opened', 'escalated', 'escalated', 'escalated'],
    );
    b.store.close();
  });

  it('an acknowledgement survives kill -9 right after acknowledge() returns', async () => {
    const file = tempFile();
    const clock = new FakeClock({ start: T0 });
    const setupA = setup({ file, clock });
    const inc = must(setupA.manager.onAlert(firing()));
    setupA.store.close();

    const here = path.dirname(fileURLToPath(import.meta.url));
    const storeUrl = pathToFileURL(path.join(here, 'store.ts')).href;
    const incidentsUrl = pathToFileURL(path.join(here, 'incidents.ts')).href;
    const child = `
      import { writeSync } from 'node:fs';
      const { Store } = await import(${JSON.stringify(storeUrl)});
      const { IncidentManager } = await import(${JSON.stringify(incidentsUrl)});
      const now = ${T0 + 5 * MINUTE};
      const clock = { now: () => now, setTimeout: () => ({}), clearTimeout: () => {} };
      const store = new Store(process.env.STORE_FILE, { clock });
      const manager = new IncidentManager({ store, clock, notify: () => {} });
      manager.acknowledge(process.env.INCIDENT_ID, 'ana');
      process.kill(process.pid, 'SIGKILL');
      writeSync(1, 'still alive\\n');
    `;
    const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], {
      env: { ...process.env, STORE_FILE: file, INCIDENT_ID: inc.id },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    proc.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      proc.on('exit', (c, s) => resolve([c, s])),
    );
    assert.equal(signal, 'SIGKILL', `the child was killed, not exited (code ${code}): ${stderr}`);
    assert.equal(stdout, '', 'killed before it could do anything else');

    const reopened = new Store(file, { clock });
    const after = must(reopened.incident(inc.id));
    assert.equal(after.state, 'acknowledged');
    assert.equal(after.acknowledgedBy, 'ana');
    assert.equal(after.acknowledgedAt, T0 + 5 * MINUTE);
    assert.equal(must(reopened.timeline(inc.id).at(-1)).kind, 'acknowledged');
    // And the agent that comes back does not page anyone for it.
    clock.advance(2 * 60 * MINUTE);
    const b = setup({ store: reopened, clock });
    b.manager.tick();
    assert.deepEqual(b.escalations(), []);
    reopened.close();
  });
});
