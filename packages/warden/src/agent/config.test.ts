import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { watchConfig } from '../cli/watch.js';
import { ConfigError, RUNBOOK_ESCALATION, escalationPolicy, loadConfigFile, parseConfig } from './config.js';

describe('pgwarden.yaml', () => {
  it('fills in the defaults: observe mode, 1 s interval, the runbook escalation', () => {
    const c = parseConfig({ databases: [{ name: 'vitals', urlEnv: 'DATABASE_URL' }] });
    assert.equal(c.mode, 'observe');
    assert.equal(c.interval, 1000);
    assert.equal(c.http.port, 9187);
    assert.equal(c.http.host, '127.0.0.1');
    assert.deepEqual(
      escalationPolicy(c).map((l) => [l.level, l.afterMinutes, l.name]),
      RUNBOOK_ESCALATION.map((l) => [l.level, l.afterMinutes, l.name]),
    );
  });

  it('names the bad key', () => {
    const bad = (raw: unknown, re: RegExp) =>
      assert.throws(
        () => parseConfig(raw),
        (e: unknown) => e instanceof ConfigError && re.test(e.message),
      );
    bad({ databases: [] }, /databases: /);
    bad({ databases: [{ name: 'v', url: 'postgres://x' }], mode: 'yolo' }, /mode: /);
    bad(
      { databases: [{ name: 'v', url: 'postgres://x' }], interval: 'often' },
      /interval: expected a duration/,
    );
    bad({ databases: [{ name: 'v', url: 'postgres://x' }], typo: 1 }, /Unrecognized key.*typo/);
    bad({ databases: [{ name: 'v' }] }, /databases\.v: give url or urlEnv/);
    bad(
      {
        databases: [{ name: 'v', url: 'postgres://x' }],
        escalation: [{ level: 1, after: '15m', name: 'DB', notifiers: ['pager'] }],
      },
      /names notifier "pager"/,
    );
  });

  it('reads a YAML file, and flags override it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-config-'));
    try {
      const file = path.join(dir, 'pgwarden.yaml');
      writeFileSync(
        file,
        'databases:\n  - name: vitals\n    urlEnv: DATABASE_URL\nmode: suggest\nhttp:\n  port: 9000\n',
      );
      assert.equal(loadConfigFile(file).mode, 'suggest');
      const c = watchConfig({ config: file, mode: 'auto', port: '0', token: 't' }, {});
      assert.equal(c.mode, 'auto');
      assert.equal(c.http.port, 0);
      assert.equal(c.http.token, 't');
      writeFileSync(file, 'databases: [\n');
      assert.throws(() => loadConfigFile(file), /not valid YAML/);
      assert.throws(() => loadConfigFile(path.join(dir, 'missing.yaml')), /cannot read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts from flags alone', () => {
    const c = watchConfig(
      { url: 'postgres://u@127.0.0.1:5432/db', mode: 'auto', webhook: ['http://127.0.0.1:9/hook'] },
      {},
    );
    assert.equal(c.databases[0]?.url, 'postgres://u@127.0.0.1:5432/db');
    assert.deepEqual(
      c.notifiers.map((n) => n.kind),
      ['stdout', 'webhook'],
    );
    assert.throws(() => watchConfig({}, {}), /pass --config/);
    assert.throws(() => watchConfig({ url: 'postgres://x', port: 'http' }, {}), /--port takes a port number/);
  });
});
