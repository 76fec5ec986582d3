// `npm start`'s entry point (`pgwarden demo`) run headless, as a user would: every scenario is played
// on a fresh embedded PostgreSQL and must be detected, remedied (where pgwarden has a remedy) and
// recovered from; the interactive demo takes a scenario from a second `pgwarden demo --scenario` and
// leaves nothing behind after Ctrl-C.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hasCommand, waitFor } from '@pgwarden/testkit';
import type { ScenarioResult } from './demo.js';
import { SCENARIOS } from './scenarios.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const SOURCE = fileURLToPath(new URL('./vitalstream.ts', import.meta.url));

/** The line of the connect() call inside a VitalStream method, from the source itself. */
function connectLineOf(method: string): number {
  const lines = readFileSync(SOURCE, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.includes(`async ${method}(`));
  const offset = lines.slice(start).findIndex((l) => l.includes('await this.pool.connect()'));
  assert.ok(start >= 0 && offset >= 0, `${method} takes a connection`);
  return start + offset + 1;
}

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const alive = (pid: number | undefined) => {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('pgwarden demo (npm start) headless', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-demo-test-'));
  const env = { PGWARDEN_DEMO_STATE: path.join(dir, 'demo.json') };
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('plays every scenario: detected, incident opened, remedied, recovered', {
    timeout: 420_000,
  }, async () => {
    const res = await run(['demo', '--scenario', 'all', '--json'], env);
    assert.equal(res.code, 0, `exit code\n${res.stderr.slice(-4000)}`);
    const results = JSON.parse(res.stdout) as ScenarioResult[];
    assert.deepEqual(
      results.map((r) => r.scenario),
      [...SCENARIOS],
    );
    for (const r of results) {
      const where = `${r.scenario}: ${JSON.stringify(r)}`;
      assert.equal(r.ok, true, where);
      assert.notEqual(r.detectedAfter, null, where);
      // Every fault opens an incident (the spike and the restart too: waiting callers, unreachable).
      assert.notEqual(r.incident, null, where);
      assert.notEqual(r.resolvedAfter, null, `resolved by itself once clear: ${where}`);
      assert.notEqual(r.recoveredAfter, null, where);
      assert.ok((r.recoveredAfter ?? 99) <= 30, `recovered within 30 s: ${where}`);
    }
    const by = Object.fromEntries(results.map((r) => [r.scenario, r]));
    // The four bugs: an incident, the remedy engine's signals, and the service back to no errors.
    for (const name of ['leak', 'long-query', 'lock-chain', 'idle-in-transaction'] as const) {
      const r = by[name] as ScenarioResult;
      assert.notEqual(r.incident, null, name);
      assert.notEqual(r.remediationAfter, null, name);
      assert.ok(
        r.actions.some((a) => /terminate ok|cancel ok/.test(a)),
        `${name}: a session was signalled: ${r.actions.join(' | ')}`,
      );
      assert.ok(r.requests.failed + r.requests.degraded > 0, `${name} hurt the service before it was fixed`);
    }
    // The diagnosis names the exact line that took the connections (source-mapped TypeScript).
    const site = (name: string, method: string) =>
      assert.ok(
        by[name]?.sites.some((s) => s.includes(`vitalstream.ts:${connectLineOf(method)}:`)),
        `${name} names ${method}'s connect() at vitalstream.ts:${connectLineOf(method)}: ${by[name]?.sites.join(' | ')}`,
      );
    site('leak', 'exportPatientHistory');
    site('long-query', 'monthlyReport');
    site('idle-in-transaction', 'importBatch');
    site('lock-chain', 'reassignPatient');
    assert.equal(by['lock-chain']?.incident?.ruleId, 'locks.blocking_chain');
    assert.equal(
      by['long-query']?.actions.some((a) => /cancel ok/.test(a)),
      true,
    );
    // The restart: the agent saw the server go, the service failed while it was down and came back.
    assert.equal(by.restart?.detectedBy, 'server.unreachable');
    assert.equal(by.restart?.incident?.ruleId, 'server.unreachable');
    assert.equal(by.spike?.incident?.ruleId, 'app_pool.waiting');
    assert.ok((by.restart?.requests.failed ?? 0) > 0);
    assert.equal(by.spike?.detectedBy, 'app_pool.waiting');
  });

  it('takes a scenario from a second terminal and leaves nothing behind after Ctrl-C', {
    timeout: 180_000,
  }, async () => {
    const child = spawn(process.execPath, [CLI, 'demo', '--no-keys'], { env: { ...process.env, ...env } });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d;
    });
    await waitFor('the demo to start', () => existsSync(env.PGWARDEN_DEMO_STATE), 90_000, 200);
    const state = JSON.parse(readFileSync(env.PGWARDEN_DEMO_STATE, 'utf8')) as {
      dashboard: string;
      token: string;
      postgres: { pid: number; dataDir: string };
    };
    assert.ok(alive(state.postgres.pid), 'PostgreSQL runs');
    assert.match(out, new RegExp(`pgwarden +${state.dashboard.replace(/[/.]/g, '\\$&')}`));
    const page = await fetch(state.dashboard);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    // Without the token the control endpoint refuses.
    const control = (JSON.parse(readFileSync(env.PGWARDEN_DEMO_STATE, 'utf8')) as { control: string })
      .control;
    assert.equal((await fetch(`${control}/scenarios/leak`, { method: 'POST' })).status, 401);

    const remote = await run(['demo', '--scenario', 'lock-chain'], env);
    assert.equal(remote.code, 0, remote.stdout + remote.stderr);
    assert.match(remote.stdout, /injected into the running demo/);
    // The first rule to see it may be the chain itself or the pool's waiting callers (both are right).
    assert.match(remote.stdout, /detected by (locks\.blocking_chain|app_pool\.waiting)/);
    assert.match(remote.stdout, /incident \S+ opened \(critical\): pid \d+ blocks \d+ sessions/);
    // The root blocker is idle in its transaction: terminated at once (a cancel cannot end it).
    assert.match(
      remote.stdout,
      /remedy: terminate pid \d+ ok \(root blocker of a lock chain, \d+s old; terminated without a cancel/,
    );
    assert.match(out, /\[lock-chain \+ *[\d.]+s\] recovered/, 'the first terminal narrates it too');

    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0, out.slice(-2000));
    assert.match(out, /stopped; PostgreSQL and its data directory are gone/);
    assert.equal(existsSync(env.PGWARDEN_DEMO_STATE), false, 'the state file is removed');
    assert.equal(existsSync(state.postgres.dataDir), false, 'the data directory is removed');
    await waitFor('the postmaster to exit', () => !alive(state.postgres.pid), 5000, 100);
  });
  it('quits on q in a terminal, stopping PostgreSQL itself', {
    skip: !hasCommand('script') && 'no `script` command',
    timeout: 120_000,
  }, async () => {
    const state = path.join(dir, 'tty.json');
    const quote = (x: string) => `'${x.replace(/'/g, `'\\''`)}'`;
    // A pseudo-terminal (util-linux script), so the demo reads keys as npm start's user does.
    const child = spawn('script', ['-qfec', `${quote(process.execPath)} ${quote(CLI)} demo`, '/dev/null'], {
      env: { ...process.env, PGWARDEN_DEMO_STATE: state },
      stdio: 'pipe',
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    await waitFor(
      'the demo to start',
      () => existsSync(state) && /Ctrl-C stops everything/.test(out),
      90_000,
      200,
    );
    assert.match(out, /press 1 leak {2}2 long-query/, 'the keys are offered in a terminal');
    const { postgres } = JSON.parse(readFileSync(state, 'utf8')) as {
      postgres: { pid: number; dataDir: string };
    };
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.stdin.write('q');
    assert.equal(await exited, 0, out.slice(-2000));
    assert.match(out, /stopped; PostgreSQL and its data directory are gone/);
    assert.equal(existsSync(postgres.dataDir), false, 'the data directory is removed');
    assert.equal(alive(postgres.pid), false, 'the postmaster is gone');
    assert.equal(existsSync(state), false);
  });
});
