// Edge cases against a real server: quoted schema names, list settings, and connections closed on every error path.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, adminClient, startPostgres } from '@pgwarden/testkit';
import pg from 'pg';
import { diagnose } from './diagnose/index.js';
import { takeSnapshot } from './probe/postgres.js';
import { measureServer } from './cli/plan-measure.js';
import { makeSnapshot, session } from './snapshot.fixture.js';

describe('edge cases: real server', () => {
  let server: EmbeddedServer;
  let dbUrl: string;

  before(async () => {
    server = await startPostgres();
    const admin = await adminClient(server.url);
    await admin.query('CREATE DATABASE review_pgss');
    await admin.end();
    const u = new URL(server.url);
    u.pathname = '/review_pgss';
    dbUrl = u.toString();
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    // A schema whose name needs quoting (upper case), as many teams keep extensions in "Monitoring".
    await c.query('CREATE SCHEMA "Monitoring"');
    await c.query('CREATE EXTENSION pg_stat_statements SCHEMA "Monitoring"');
    await c.query('SELECT pg_sleep(0.01)');
    await c.end();
  });
  after(async () => {
    await server?.destroy();
  });

  it('doctor reads pg_stat_statements installed in a schema whose name needs quoting', async () => {
    const snap = await takeSnapshot(dbUrl);
    assert.equal(snap.statStatements.installed, true);
    assert.equal(
      snap.statStatements.error,
      null,
      `pg_stat_statements read failed: ${snap.statStatements.error}`,
    );
  });

  it('plan --url measures load from pg_stat_statements installed in a schema whose name needs quoting', async () => {
    const m = await measureServer(dbUrl, { sampleSeconds: 0.2 });
    const missing = (m.load as { missing?: string }).missing ?? '';
    assert.doesNotMatch(missing, /cannot be read|does not exist/, missing);
  });

  it("doctor's shared_preload_libraries statement keeps the libraries already preloaded as separate entries", async () => {
    const snap = makeSnapshot([session(101)], {
      server: { sharedPreloadLibraries: ['auto_explain'] },
      statStatements: { installed: false, preloaded: false, error: null, top: [] },
    });
    const finding = diagnose(snap).findings.find((f) => f.id === 'extension.pg_stat_statements_missing');
    const action = finding?.actions.find((a) => a.target === 'shared_preload_libraries');
    assert.ok(action, 'no shared_preload_libraries action');
    const admin = await adminClient(server.url);
    try {
      await admin.query(action.text);
      // What a restart would read: the value ALTER SYSTEM wrote into postgresql.auto.conf.
      const res = await admin.query<{ setting: string }>(
        "SELECT setting FROM pg_file_settings WHERE name = 'shared_preload_libraries' AND sourcefile LIKE '%postgresql.auto.conf'",
      );
      const written = res.rows[0]?.setting ?? '';
      // PostgreSQL splits the list on commas, honouring double quotes: a quoted "a,b" is ONE library,
      // which a restart fails to load (FATAL: could not access file "auto_explain,pg_stat_statements").
      assert.ok(
        !written.startsWith('"'),
        `ALTER SYSTEM wrote shared_preload_libraries = ${written}: one library named "auto_explain,pg_stat_statements"; the server would not restart`,
      );
    } finally {
      await admin.query('ALTER SYSTEM RESET shared_preload_libraries').catch(() => undefined);
      await admin.end();
    }
  });
});

describe('edge cases: connections left open', () => {
  let server: EmbeddedServer;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.destroy();
  });

  it('indexes closes its connection when setting its statement_timeout fails', async () => {
    const { runIndexes } = await import('./cli/indexes.js');
    const out: string[] = [];
    const err: string[] = [];
    const code = await runIndexes(
      // Above PostgreSQL's int range for statement_timeout (2147483647 ms): set_config fails after connect.
      { url: server.url, statementTimeout: '9999999999' },
      {
        out: (t) => out.push(t),
        err: (t) => err.push(t),
        env: {},
        isTTY: false,
        columns: 80,
      },
    );
    assert.equal(code, 3);
    const admin = await adminClient(server.url);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const res = await admin.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgwarden'",
      );
      assert.equal(
        res.rows[0]?.n,
        0,
        `runIndexes returned ${code} but left its connection open (${err.join('')})`,
      );
    } finally {
      await admin.end();
    }
  });
});
