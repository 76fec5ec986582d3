// Index advice, pure parts: the real parser (libpg-query) on statements as pg_stat_statements writes
// them, column attribution through aliases, schemas and the search_path, and the proposal rules.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { analyzeParsed, serverText } from './analyze.js';
import { indexName, quoteIdent, uniqueName } from './names.js';
import { type Parser, loadParser } from './parser.js';
import {
  type Advice,
  type Catalog,
  type CatalogIndex,
  type CatalogTable,
  type StatementInput,
  advise,
  catalogResolver,
  parseStatements,
  relationsOf,
} from './propose.js';
import { renderAdvice } from './render.js';

let parser: Parser;

function table(
  name: string,
  columns: string[],
  options: {
    schema?: string;
    rows?: number;
    indexes?: Partial<CatalogIndex>[];
    kind?: CatalogTable['kind'];
  } = {},
): CatalogTable {
  return {
    schema: options.schema ?? 'public',
    name,
    kind: options.kind ?? 'table',
    columns: columns.map((c) => ({
      name: c,
      type: c === 'doc' ? 'jsonb' : 'text',
      btree: c !== 'doc',
      patternOps: c === 'doc' ? null : 'text_pattern_ops',
      collationC: false,
    })),
    indexes: (options.indexes ?? []).map((i) => ({
      name: i.name ?? `${name}_idx`,
      columns: i.columns ?? [],
      method: i.method ?? 'btree',
      partial: i.partial ?? false,
      valid: i.valid ?? true,
      leadingOpclass: i.leadingOpclass ?? null,
      leadingCollationC: i.leadingCollationC ?? false,
      definition: i.definition ?? `CREATE INDEX ${i.name} ON ${name}`,
    })),
    stats: {
      rows: options.rows ?? 1_000_000,
      totalBytes: 100 << 20,
      seqScan: 50,
      seqTupRead: 5e7,
      idxScan: 1,
    },
  };
}

const PATIENTS = table('patients', ['id', 'name', 'created_at', 'ward_id', 'status', 'doc'], {
  indexes: [{ name: 'patients_pkey', columns: ['id'] }],
});
const VISITS = table('visits', ['id', 'patient_id', 'started_at', 'kind'], {
  schema: 'clinic',
  indexes: [{ name: 'visits_pkey', columns: ['id'] }],
});

function catalogOf(...tables: CatalogTable[]): Catalog {
  return { searchPath: ['public'], tables };
}

function statement(query: string, meanMs = 2000, calls = 10): StatementInput {
  return { queryId: String(query.length), query, calls, meanMs, totalMs: meanMs * calls };
}

function run(
  queries: (string | StatementInput)[],
  catalog = catalogOf(PATIENTS, VISITS),
  minRows = 10_000,
): Advice {
  const inputs = queries.map((q) => (typeof q === 'string' ? statement(q) : q));
  return advise(
    parseStatements(parser, inputs),
    catalog,
    { slowMeanMillis: 1000, minRows, seqScanRowsRead: 1_000_000 },
    parser.needsQuotingAsKeyword,
  );
}

function analyze(sql: string, catalog = catalogOf(PATIENTS, VISITS)) {
  return analyzeParsed(parser.parse(sql), catalogResolver(catalog));
}

describe('index advice (pure)', () => {
  before(async () => {
    parser = await loadParser();
  });

  it('loads the real parser from the package (no download), synchronously usable after load', () => {
    assert.ok(parser.grammarVersion >= 170000, `grammar ${parser.grammarVersion}`);
    assert.throws(() => parser.parse('SELEC 1'), /syntax error/);
  });

  it("proposes the runbook's index for the runbook's query, as pg_stat_statements writes it", () => {
    const advice = run(['SELECT * FROM patients WHERE created_at > now() - interval $1']);
    assert.equal(advice.proposals.length, 1);
    const p = advice.proposals[0];
    assert.equal(p?.name, 'idx_patients_created_at');
    assert.equal(
      p?.statement,
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_patients_created_at ON public.patients (created_at);',
    );
    assert.deepEqual(p?.evidence.statements[0]?.uses, ['created_at (range)']);
    assert.equal(p?.evidence.statements[0]?.calls, 10);
    assert.equal(p?.evidence.table.rows, 1_000_000);
  });

  it('resolves aliases and schemas in joins: each side gets what it is filtered or joined by', () => {
    const a = analyze(
      `SELECT p.name, v.started_at FROM patients AS p
         JOIN clinic.visits v ON v.patient_id = p.id AND v.kind = $2
        WHERE p.ward_id = $1`,
    );
    const p = a.usages.find((u) => u.table.name === 'patients');
    const v = a.usages.find((u) => u.table.name === 'visits');
    assert.equal(p?.alias, 'p');
    assert.deepEqual(p?.filters, [{ column: 'ward_id', kind: 'eq' }]);
    assert.deepEqual(p?.joins, [{ column: 'id', kind: 'join' }]);
    assert.deepEqual(v?.table, { schema: 'clinic', name: 'visits' });
    assert.deepEqual(v?.filters, [{ column: 'kind', kind: 'eq' }]);
    assert.deepEqual(v?.joins, [{ column: 'patient_id', kind: 'join' }]);

    const advice = run([
      'SELECT p.name FROM patients p JOIN clinic.visits v ON v.patient_id = p.id WHERE p.created_at >= $1',
    ]);
    assert.deepEqual(
      advice.proposals.map((x) => x.statement),
      [
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_patients_created_at ON public.patients (created_at);',
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_visits_patient_id ON clinic.visits (patient_id);',
      ].sort(),
    );
  });

  it('attributes unqualified columns through the catalog, and USING joins to both sides', () => {
    const a = analyze(
      'SELECT * FROM patients JOIN clinic.visits USING (id) WHERE started_at BETWEEN $1 AND $2 AND ward_id IN ($3, $4)',
    );
    const p = a.usages.find((u) => u.table.name === 'patients');
    const v = a.usages.find((u) => u.table.name === 'visits');
    assert.deepEqual(p?.filters, [{ column: 'ward_id', kind: 'in' }]);
    assert.deepEqual(v?.filters, [{ column: 'started_at', kind: 'range' }]);
    assert.deepEqual(p?.joins, [{ column: 'id', kind: 'join' }]);
    assert.deepEqual(v?.joins, [{ column: 'id', kind: 'join' }]);
    assert.deepEqual(
      a.params.map((x) => [x.number, x.role, x.column]),
      [
        [1, 'between_low', 'started_at'],
        [2, 'between_high', 'started_at'],
        [3, 'eq', 'ward_id'],
        [4, 'eq', 'ward_id'],
      ],
    );
  });

  it('resolves unqualified tables through the search_path and ignores CTEs, views and pg_catalog', () => {
    const other = table('patients', ['id', 'archived_at'], { schema: 'archive' });
    const catalog: Catalog = { searchPath: ['archive', 'public'], tables: [PATIENTS, other] };
    const a = analyze('SELECT * FROM patients WHERE archived_at < $1', catalog);
    assert.deepEqual(a.usages[0]?.table, { schema: 'archive', name: 'patients' });
    const cte = analyze(
      'WITH patients AS (SELECT * FROM clinic.visits WHERE kind = $1) SELECT * FROM patients WHERE name = $2',
    );
    assert.deepEqual(
      cte.usages.map((u) => [u.table.name, u.filters]),
      [['visits', [{ column: 'kind', kind: 'eq' }]]],
    );
    assert.equal(analyze('SELECT * FROM pg_class WHERE relname = $1').usages.length, 0);
  });

  it('finds columns in subqueries, correlated EXISTS and IN (SELECT …)', () => {
    const a = analyze(
      `SELECT * FROM patients p
        WHERE EXISTS (SELECT 1 FROM clinic.visits v WHERE v.patient_id = p.id AND v.started_at > $1)
          AND p.ward_id IN (SELECT w FROM unnest($2::int[]) w)`,
    );
    const v = a.usages.find((u) => u.table.name === 'visits');
    const p = a.usages.find((u) => u.table.name === 'patients');
    assert.deepEqual(v?.filters, [{ column: 'started_at', kind: 'range' }]);
    assert.deepEqual(v?.joins, [{ column: 'patient_id', kind: 'join' }]);
    assert.deepEqual(p?.joins.map((j) => j.column).sort(), ['id', 'ward_id']);
  });

  it('builds a composite with equality columns before the range column: (a = $1 AND b > $2) -> (a, b)', () => {
    const advice = run(['SELECT * FROM patients WHERE created_at > $2 AND ward_id = $1 AND status IS NULL']);
    assert.deepEqual(
      advice.proposals[0]?.columns.map((c) => c.name),
      ['ward_id', 'status', 'created_at'],
    );
    assert.equal(advice.proposals[0]?.name, 'idx_patients_ward_id_status_created_at');
    const two = run(['SELECT * FROM patients WHERE ward_id = $1 AND created_at > $2']);
    assert.equal(
      two.proposals[0]?.statement,
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_patients_ward_id_created_at ON public.patients (ward_id, created_at);',
    );
  });

  it('uses ORDER BY: after equality columns, and alone with a LIMIT', () => {
    const eqOrder = run(['SELECT * FROM patients WHERE ward_id = $1 ORDER BY created_at DESC LIMIT $2']);
    assert.deepEqual(
      eqOrder.proposals[0]?.columns.map((c) => [c.name, c.kind]),
      [
        ['ward_id', 'eq'],
        ['created_at', 'order'],
      ],
    );
    const topN = run(['SELECT id, name FROM patients ORDER BY created_at DESC LIMIT $1']);
    assert.deepEqual(
      topN.proposals.map((p) => p.name),
      ['idx_patients_created_at'],
    );
    const alias = run(['SELECT created_at AS c FROM patients ORDER BY c LIMIT 10']);
    assert.deepEqual(
      alias.proposals.map((p) => p.name),
      ['idx_patients_created_at'],
    );
    // Without a LIMIT the whole table is read anyway; mixed directions need a special index: nothing.
    assert.equal(run(['SELECT * FROM patients ORDER BY created_at']).proposals.length, 0);
    assert.equal(
      run(['SELECT * FROM patients ORDER BY ward_id, created_at DESC LIMIT 5']).proposals.length,
      0,
    );
  });

  it('an existing index leading with the column suppresses the proposal; one where it is second does not', () => {
    const leading = table('patients', ['id', 'created_at', 'ward_id'], {
      indexes: [{ name: 'patients_created_at_ward', columns: ['created_at', 'ward_id'] }],
    });
    const advice = run(['SELECT * FROM patients WHERE created_at > $1'], catalogOf(leading));
    assert.equal(advice.proposals.length, 0);
    assert.deepEqual(advice.statements[0]?.servedBy, ['public.patients: patients_created_at_ward']);
    const second = table('patients', ['id', 'created_at', 'ward_id'], {
      indexes: [{ name: 'patients_ward_created', columns: ['ward_id', 'created_at'] }],
    });
    assert.deepEqual(
      run(['SELECT * FROM patients WHERE created_at > $1'], catalogOf(second)).proposals.map((p) => p.name),
      ['idx_patients_created_at'],
    );
    // A hash index serves equality but not ranges; an expression index serves neither.
    const hash = table('patients', ['id', 'created_at'], {
      indexes: [
        { name: 'h', columns: ['created_at'], method: 'hash' },
        { name: 'e', columns: [null] },
      ],
    });
    assert.equal(run(['SELECT * FROM patients WHERE created_at = $1'], catalogOf(hash)).proposals.length, 0);
    assert.equal(run(['SELECT * FROM patients WHERE created_at < $1'], catalogOf(hash)).proposals.length, 1);
  });

  it('is conservative with partial and invalid indexes, small tables, partitioned tables and views', () => {
    const partial = table('patients', ['id', 'created_at'], {
      indexes: [
        { name: 'recent', columns: ['created_at'], partial: true, definition: 'CREATE INDEX recent …' },
      ],
    });
    const p = run(['SELECT * FROM patients WHERE created_at > $1'], catalogOf(partial));
    assert.equal(p.proposals.length, 0);
    assert.match(p.notes.join('\n'), /partial index recent/);
    const invalid = table('patients', ['id', 'created_at'], {
      indexes: [{ name: 'idx_patients_created_at', columns: ['created_at'], valid: false }],
    });
    const i = run(['SELECT * FROM patients WHERE created_at > $1'], catalogOf(invalid));
    assert.equal(i.proposals.length, 0);
    assert.match(i.notes.join('\n'), /INVALID.*DROP INDEX CONCURRENTLY public\.idx_patients_created_at/);
    const tiny = table('patients', ['id', 'created_at'], { rows: 5000 });
    const t = run(['SELECT * FROM patients WHERE created_at > $1'], catalogOf(tiny));
    assert.equal(t.proposals.length, 0);
    assert.match(t.notes.join('\n'), /small tables.*public\.patients \(5,000 rows\)/);
    assert.equal(
      run(['SELECT * FROM patients WHERE created_at > $1'], catalogOf(tiny), 0).proposals.length,
      1,
    );
    const parted = table('patients', ['id', 'created_at'], { kind: 'partitioned' });
    assert.match(
      run(['SELECT * FROM patients WHERE created_at > $1'], catalogOf(parted)).notes.join('\n'),
      /partitioned/,
    );
    const view = table('patients', ['id', 'created_at'], { kind: 'other' });
    const v = run(['SELECT * FROM patients WHERE created_at > $1'], catalogOf(view));
    assert.equal(v.proposals.length + v.notes.length, 0);
  });

  it('quotes identifiers exactly when PostgreSQL would, and keeps index names plain', () => {
    const isKeyword = parser.needsQuotingAsKeyword;
    assert.equal(quoteIdent('created_at', isKeyword), 'created_at');
    assert.equal(quoteIdent('order', isKeyword), '"order"');
    assert.equal(quoteIdent('user', isKeyword), '"user"');
    assert.equal(quoteIdent('name', isKeyword), 'name'); // unreserved keyword
    assert.equal(quoteIdent('CreatedAt', isKeyword), '"CreatedAt"');
    assert.equal(quoteIdent('a"b', isKeyword), '"a""b"');
    const odd = table('Order Items', ['id', 'order', 'Placed At'], { schema: 'Sales' });
    const advice = run(
      [`SELECT * FROM "Sales"."Order Items" i WHERE i."order" = $1 AND i."Placed At" < $2`],
      catalogOf(odd),
    );
    assert.equal(
      advice.proposals[0]?.statement,
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_order_items_order_placed_at ON "Sales"."Order Items" ("order", "Placed At");',
    );
    const long = indexName('t'.repeat(40), ['c'.repeat(30), 'd'.repeat(30)]);
    assert.ok(Buffer.byteLength(long) <= 63 && /^idx_t+_c+_[0-9a-f]{8}$/.test(long), long);
    assert.equal(
      uniqueName('idx_a', (n) => n === 'idx_a' || n === 'idx_a_2'),
      'idx_a_3',
    );
  });

  it('never reuses a taken name, and merges (a) into (a, b) on the same table', () => {
    const catalog: Catalog = {
      ...catalogOf(PATIENTS),
      takenNames: [{ schema: 'public', name: 'idx_patients_ward_id_created_at' }],
    };
    const advice = run(
      [
        'SELECT * FROM patients WHERE ward_id = $1',
        'SELECT * FROM patients WHERE ward_id = $1 AND created_at > $2',
      ],
      catalog,
    );
    assert.equal(advice.proposals.length, 1);
    assert.equal(advice.proposals[0]?.name, 'idx_patients_ward_id_created_at_2');
    assert.equal(advice.proposals[0]?.evidence.statements.length, 2);
  });

  it('handles OR, IS NULL, = ANY, LIKE and conditions it must not use', () => {
    const or = analyze(
      'SELECT * FROM patients WHERE status = $1 OR status = $2 OR (status IS NULL AND name = $3)',
    );
    assert.deepEqual(or.usages[0]?.filters, [{ column: 'status', kind: 'in' }]);
    const mixed = analyze('SELECT * FROM patients WHERE status = $1 OR name = $2');
    assert.deepEqual(mixed.usages[0]?.filters, []);
    const any = analyze(`SELECT * FROM patients WHERE id = ANY($1) AND name LIKE 'Ann%' AND ward_id <> $2`);
    assert.deepEqual(any.usages[0]?.filters, [
      { column: 'id', kind: 'in' },
      { column: 'name', kind: 'like_prefix' },
    ]);
    const like = run([`SELECT * FROM patients WHERE name LIKE 'Ann%'`]);
    assert.equal(
      like.proposals[0]?.statement,
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_patients_name ON public.patients (name text_pattern_ops);',
    );
    const none = analyze(
      `SELECT * FROM patients WHERE lower(name) = $1 AND created_at::date = $2 AND NOT (ward_id = $3)
         AND name LIKE '%x' AND status = random()::text AND ward_id = ward_id`,
    );
    assert.deepEqual(none.usages[0]?.filters, []);
    assert.match(analyze('SELECT * FROM patients WHERE name LIKE $1').notes.join(), /pattern is a parameter/);
    // jsonb has no btree operator class: never proposed.
    assert.equal(run(['SELECT * FROM patients WHERE doc = $1']).proposals.length, 0);
  });

  it('reads UPDATE, DELETE and INSERT … SELECT, and skips utility statements', () => {
    const up = analyze('UPDATE patients SET status = $1 WHERE ward_id = $2 AND created_at < $3');
    assert.equal(up.kind, 'update');
    assert.deepEqual(
      up.usages[0]?.filters.map((f) => f.column),
      ['ward_id', 'created_at'],
    );
    const del = analyze(
      'DELETE FROM clinic.visits v USING patients p WHERE v.patient_id = p.id AND p.status = $1',
    );
    assert.equal(del.kind, 'delete');
    assert.deepEqual(
      del.usages.map((u) => [u.table.name, u.filters.length, u.joins.length]),
      [
        ['visits', 0, 1],
        ['patients', 1, 1],
      ],
    );
    const ins = analyze(
      'INSERT INTO clinic.visits (patient_id) SELECT id FROM patients WHERE created_at > $1',
    );
    assert.equal(ins.kind, 'insert');
    assert.deepEqual(ins.usages[0]?.filters, [{ column: 'created_at', kind: 'range' }]);
    assert.equal(run(['CREATE INDEX ON patients (created_at)', 'VACUUM patients']).proposals.length, 0);
  });

  it('skips statements that do not parse, with a note', () => {
    const advice = run([
      'SELECT * FROM patients WHERE created_at > now() - interval $1',
      'SELECT * FROM patients WHERE created_at >>> $1 …',
      'SELECT * FROM patients WHERE name = $1 AND (',
      'DEALLOCATE $1', // PostgreSQL 18's pg_stat_statements writes this; it reads no table
      '/* app */ (SELECT 1',
    ]);
    assert.deepEqual(
      advice.proposals.map((p) => p.name),
      ['idx_patients_created_at'],
    );
    assert.match(
      advice.notes.join('\n'),
      /skipped 3 slow statements that did not parse \(first: syntax error/,
    );
  });

  it('analyzes a fast statement only for a scan-heavy table', () => {
    const quiet = { ...PATIENTS, stats: { ...PATIENTS.stats, seqTupRead: 10, seqScan: 1 } };
    const fast = statement('SELECT * FROM patients WHERE created_at > $1', 5, 100_000);
    assert.equal(run([fast], catalogOf(quiet)).proposals.length, 0);
    const heavy = run([fast], catalogOf(PATIENTS, VISITS));
    assert.equal(heavy.proposals.length, 1);
    assert.equal(heavy.proposals[0]?.evidence.table.heavy, true);
    assert.deepEqual(heavy.heavyTables, ['public.patients', 'clinic.visits']);
    assert.match(heavy.notes.join('\n'), /clinic\.visits is read mostly by sequential scans/);
  });

  it('collects the relations to load, and rewrites typed placeholders for the server', () => {
    const parsed = parseStatements(parser, [
      statement('SELECT * FROM patients p JOIN clinic.visits v ON v.patient_id = p.id'),
      statement('WITH x AS (SELECT 1) SELECT * FROM x'),
      statement('nonsense here'),
    ]);
    assert.deepEqual(relationsOf(parsed), [
      { schema: null, name: 'patients' },
      { schema: 'clinic', name: 'visits' },
      { schema: null, name: 'x' },
    ]);
    const sql =
      "SELECT 'é' AS x, * FROM patients WHERE created_at > now() - interval $1 AND created_at < timestamptz $2";
    const a = analyze(sql);
    assert.equal(
      serverText(sql, a),
      "SELECT 'é' AS x, * FROM patients WHERE created_at > now() - CAST($1 AS interval) AND created_at < CAST($2 AS timestamptz)",
    );
    assert.equal(a.paramCount, 2);
  });

  it('renders at 80 columns, with database text escaped for the terminal', () => {
    const evil = table('patients', ['id', 'created_at']);
    const advice = run(
      [
        statement(
          'SELECT * FROM patients /* \u001b[2J\u202e */ WHERE created_at > now() - interval $1',
          1500,
          3,
        ),
      ],
      catalogOf(evil),
    );
    const out = renderAdvice(advice, {
      width: 80,
      slowMeanMillis: 1000,
      minRows: 10_000,
      server: '18.4',
      database: 'postgres',
    });
    assert.ok(!out.includes('\u001b') && !out.includes('\u202e'), 'no raw control characters');
    assert.match(out, /\\x1b\[2J/);
    for (const line of out.split('\n')) {
      if (line.startsWith('CREATE INDEX')) continue; // statements are printed whole, to be copied
      assert.ok([...line].length <= 80, `line over 80 columns: ${line}`);
    }
    assert.match(out, /idx_patients_created_at/);
    assert.match(out, /--execute idx_patients_created_at/);
  });
});
