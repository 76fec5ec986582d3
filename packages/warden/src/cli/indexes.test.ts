// `pgwarden indexes` end to end, on its own server (so no other test's statements are in
// pg_stat_statements): the runbook's slow query on a 200k-row `patients` table gets exactly the
// runbook's index; --execute creates it and the plan turns from a Seq Scan into an index scan; a
// second run proposes nothing; a build that hits lock_timeout leaves no invalid index behind; bad
// input gives one-line errors that never show the password.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, adminClient, freePort, startPostgres } from '@pgwarden/testkit';
import type pg from 'pg';
import { type IndexesFlags, runIndexes } from './indexes.js';
import { captured } from './io.fixture.js';

const SECRET = `S3cret-${Math.random().toString(36).slice(2, 10)}`;

const indexes = (flags: IndexesFlags, env: Record<string, string | undefined> = {}) =>
  captured(runIndexes, flags, env);

async function indexNames(admin: pg.Client, table: string): Promise<string[]> {
  const res = await admin.query<{ indexname: string }>(
    "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname",
    [table],
  );
  return res.rows.map((r) => r.indexname);
}

describe('pgwarden indexes', () => {
  let server: EmbeddedServer;
  let admin: pg.Client;
  let app: pg.Client;

  before(async () => {
    server = await startPostgres();
    admin = await adminClient(server.url);
    app = await adminClient(server.url);
    await admin.query(`CREATE ROLE app_user LOGIN PASSWORD '${SECRET}'`);
    await admin.query(
      'CREATE TABLE patients (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL)',
    );
    // 200,000 patients admitted evenly over the last year.
    await admin.query(
      `INSERT INTO patients (name, created_at)
       SELECT 'patient ' || g, now() - interval '1 year' * (g::float8 / 200000) FROM generate_series(1, 200000) g`,
    );
    await admin.query('ANALYZE patients');
    await admin.query('SELECT pg_stat_statements_reset()');
    // The runbook's query, as the application runs it.
    for (let i = 0; i < 3; i++) {
      await app.query("SELECT * FROM patients WHERE created_at > now() - interval '1 day'");
    }
  });

  after(async () => {
    await app?.end().catch(() => undefined);
    await admin?.end().catch(() => undefined);
    await server?.destroy();
  });

  it("proposes exactly the runbook's idx_patients_created_at, with its evidence (dry run, exit 1)", async (t) => {
    if (!server.pgStatStatements) return t.skip('these PostgreSQL binaries have no pg_stat_statements');
    const json = await indexes({ url: server.url, slowMean: '0', json: true });
    assert.equal(json.code, 1, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.deepEqual(
      report.proposals.map((p: { name: string }) => p.name),
      ['idx_patients_created_at'],
    );
    const p = report.proposals[0];
    assert.equal(
      p.statement,
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_patients_created_at ON public.patients (created_at);',
    );
    assert.deepEqual(p.columns, [{ name: 'created_at', kind: 'range' }]);
    const ev = p.evidence.statements[0];
    assert.match(ev.query, /^SELECT \* FROM patients WHERE created_at > now\(\) - interval \$1$/);
    assert.equal(ev.calls, 3);
    assert.ok(ev.meanMs > 0);
    assert.ok(
      p.evidence.table.rows >= 190_000 && p.evidence.table.rows <= 210_000,
      `${p.evidence.table.rows} rows`,
    );
    assert.ok(p.evidence.table.totalBytes > 5_000_000);
    assert.ok(p.evidence.table.seqScan >= 3);
    assert.deepEqual(await indexNames(admin, 'patients'), ['patients_pkey'], 'a dry run changes nothing');

    const text = await indexes({ url: server.url, slowMean: '0' });
    assert.equal(text.code, 1);
    assert.match(text.stdout, /1\. idx_patients_created_at on public\.patients \(created_at\)/);
    assert.match(
      text.stdout,
      /CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_patients_created_at\n\s+ON public\.patients \(created_at\);/,
    );
    assert.match(text.stdout, /pgwarden indexes --execute idx_patients_created_at/);
    for (const line of text.stdout.split('\n')) assert.ok([...line].length <= 80, `over 80 columns: ${line}`);

    // At the doctor's default threshold (1000 ms) these 30 ms statements are not slow, and the table
    // has had only a few sequential scans: nothing to propose.
    const quiet = await indexes({ url: server.url, json: true });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(JSON.parse(quiet.stdout).proposals.length, 0);
  });

  it('--execute creates it, and the plan turns from a Seq Scan into an index scan on it (exit 0)', async (t) => {
    if (!server.pgStatStatements) return t.skip('these PostgreSQL binaries have no pg_stat_statements');
    const run = await indexes({ url: server.url, slowMean: '0', execute: true });
    assert.equal(run.code, 0, `${run.stderr}\n${run.stdout}`);
    const [before, rest] = run.stdout.split(/^CREATE INDEX CONCURRENTLY/m) as [string, string];
    assert.ok(rest, run.stdout);
    assert.match(before, /Plan before, statement 1: SELECT \* FROM patients WHERE created_at > now\(\) -/);
    assert.match(before, /Seq Scan on patients/);
    assert.doesNotMatch(before.split('Plan before')[1] ?? '', /Index Scan|idx_patients_created_at/);
    assert.match(before, /SET lock_timeout = '5000ms';\s*$/);
    assert.match(rest, /Created in .*; the index is valid\./);
    const planAfter = rest.split('Plan after')[1] ?? '';
    assert.match(planAfter, /(Bitmap Index Scan on|Index Scan using) idx_patients_created_at/);
    assert.doesNotMatch(planAfter, /Seq Scan/);
    for (const line of run.stdout.split('\n')) assert.ok([...line].length <= 80, `over 80 columns: ${line}`);

    assert.deepEqual(await indexNames(admin, 'patients'), ['idx_patients_created_at', 'patients_pkey']);
    const def = await admin.query<{ indexdef: string; valid: boolean }>(
      `SELECT indexdef, indisvalid AS valid FROM pg_indexes
         JOIN pg_index ON indexrelid = to_regclass('public.idx_patients_created_at')
        WHERE indexname = 'idx_patients_created_at'`,
    );
    assert.match(def.rows[0]?.indexdef ?? '', /ON public\.patients USING btree \(created_at\)/);
    assert.equal(def.rows[0]?.valid, true);
  });

  it('a second run proposes nothing, and says which index serves the statement (exit 0)', async (t) => {
    if (!server.pgStatStatements) return t.skip('these PostgreSQL binaries have no pg_stat_statements');
    const json = await indexes({ url: server.url, slowMean: '0', json: true });
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.deepEqual(report.proposals, []);
    const stmt = report.statements.find((s: { query: string }) =>
      /FROM patients WHERE created_at/.test(s.query),
    );
    assert.deepEqual(stmt?.servedBy, ['public.patients: idx_patients_created_at']);
    const text = await indexes({ url: server.url, slowMean: '0', execute: true });
    assert.equal(text.code, 0);
    assert.match(text.stdout, /nothing to propose/);
  });

  it('a build that hits lock_timeout fails with exit 3 and leaves no invalid index; then it succeeds', async (t) => {
    if (!server.pgStatStatements) return t.skip('these PostgreSQL binaries have no pg_stat_statements');
    await admin.query('CREATE TABLE visits (id int, kind text, note text)');
    await admin.query(
      "INSERT INTO visits SELECT g, 'kind-' || (g % 1000), 'note' FROM generate_series(1, 20000) g",
    );
    await admin.query('ANALYZE visits');
    // A comment that would clear the screen, kept in pg_stat_statements' text.
    for (let i = 0; i < 2; i++) await app.query("SELECT * FROM visits /* \u001b[2J */ WHERE kind = 'kind-7'");

    const dry = await indexes({ url: server.url, slowMean: '0' });
    assert.equal(dry.code, 1);
    assert.match(dry.stdout, /idx_visits_kind on public\.visits \(kind\)/);
    assert.ok(!dry.stdout.includes('\u001b'), 'no raw escape from the database');
    assert.match(dry.stdout, /\\x1b\[2J/);

    // An open snapshot: CREATE INDEX CONCURRENTLY waits for it, and lock_timeout ends that wait.
    const holder = await adminClient(server.url);
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await holder.query('SELECT count(*) FROM pg_class');
      const blocked = await indexes({
        url: server.url,
        slowMean: '0',
        execute: 'idx_visits_kind',
        lockTimeout: '300ms',
      });
      assert.equal(blocked.code, 3, blocked.stdout);
      assert.match(blocked.stderr, /lock timeout/);
      assert.equal(blocked.stderr.trim().split('\n').length, 1);
      assert.match(blocked.stdout, /dropped the invalid index/);
      assert.deepEqual(await indexNames(admin, 'visits'), [], 'no invalid index left behind');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }

    const done = await indexes({ url: server.url, slowMean: '0', execute: 'idx_visits_kind' });
    assert.equal(done.code, 0, `${done.stderr}\n${done.stdout}`);
    assert.match(done.stdout, /custom plan for sample values: \$1 = 'kind-\d+'::text/);
    assert.match(done.stdout.split('Plan after')[0] ?? '', /Seq Scan on visits/);
    assert.match(
      done.stdout.split('Plan after')[1] ?? '',
      /(Bitmap Index Scan on|Index Scan using) idx_visits_kind/,
    );
    assert.deepEqual(await indexNames(admin, 'visits'), ['idx_visits_kind']);
  });

  it('gives one-line errors with exit 3 for bad input, never the password', async () => {
    const closed = await freePort();
    const u = new URL(server.url);
    u.username = 'app_user';
    u.password = `${SECRET}x`;
    const cases: { flags: IndexesFlags; expect: RegExp }[] = [
      { flags: {}, expect: /pass --url/ },
      { flags: { url: `postgres://app_user:${SECRET}@127.0.0.1:notaport/x` }, expect: /malformed/ },
      {
        flags: { url: `postgres://app_user:${SECRET}@127.0.0.1:${closed}/postgres` },
        expect: /connection refused/,
      },
      { flags: { url: u.toString() }, expect: /authentication failed/ },
      { flags: { url: server.url, slowMean: 'slow' }, expect: /--slow-mean takes a duration/ },
      { flags: { url: server.url, minRows: 'many' }, expect: /--min-rows takes a number/ },
      { flags: { url: server.url, lockTimeout: '0' }, expect: /--lock-timeout must be above 0/ },
      {
        flags: { url: server.url, slowMean: '0', minRows: '0', execute: 'idx_nope' },
        expect: /no proposed index is named idx_nope/,
      },
    ];
    // One proposal must exist for the last case: a statement on a small table, with --min-rows 0.
    await admin.query('CREATE TABLE wards (id int, code text)');
    await app.query('SELECT * FROM wards WHERE code = $1', ['w1']);
    for (const c of cases) {
      const res = await indexes(c.flags);
      assert.equal(res.code, 3, `${JSON.stringify(c.flags)} -> ${res.stderr}`);
      assert.match(res.stderr, c.expect);
      assert.equal(res.stderr.trim().split('\n').length, 1, `one line: ${res.stderr}`);
      assert.ok(!res.stderr.includes(SECRET) && !res.stdout.includes(SECRET), 'the password never appears');
    }
    const env = await indexes({ slowMean: '0', minRows: '0', json: true }, { DATABASE_URL: server.url });
    assert.equal(env.code, 1, env.stderr);
    assert.ok(
      JSON.parse(env.stdout).proposals.some((p: { name: string }) => p.name === 'idx_wards_code'),
      'DATABASE_URL is used',
    );
  });
});
