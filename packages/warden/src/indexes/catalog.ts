/**
 * What `pgwarden indexes` reads from the server: the statements (pg_stat_statements, with the
 * column names of the server's version), the scan-heavy tables (pg_stat_user_tables), and, for the
 * tables the statements name, their columns, indexes and statistics (pg_class, pg_attribute,
 * pg_index). Read-only; every query is fixed text with parameters.
 */
import type pg from 'pg';
import type { RelationName } from './analyze.js';
import type { Catalog, CatalogColumn, CatalogIndex, CatalogTable, StatementInput } from './propose.js';

export interface ServerFacts {
  version: string;
  versionNum: number;
  major: number;
  database: string;
  /** current_schemas(false): the search_path as it resolves for this connection. */
  searchPath: string[];
  /** The database's default collation sorts bytewise (C/POSIX with the libc provider). */
  collationC: boolean;
}

export async function readServerFacts(client: pg.Client): Promise<ServerFacts> {
  const res = await client.query(
    `SELECT current_setting('server_version') AS version,
            current_setting('server_version_num')::int AS num,
            current_database() AS database,
            current_schemas(false)::text[] AS path`,
  );
  const row = res.rows[0];
  const major = Math.floor(row.num / 10000);
  // datlocprovider exists from 15 on; an ICU database's datcollate does not decide its ordering.
  const provider = major >= 15 ? "AND datlocprovider = 'c'" : '';
  const coll = await client.query<{ c: boolean }>(
    `SELECT (datcollate IN ('C', 'POSIX') ${provider}) AS c FROM pg_database WHERE datname = current_database()`,
  );
  return {
    version: row.version,
    versionNum: row.num,
    major,
    database: row.database,
    searchPath: row.path ?? ['public'],
    collationC: coll.rows[0]?.c ?? false,
  };
}

export interface StatementsRead {
  /** Whether pg_stat_statements could be read. */
  available: boolean;
  /** Why not, when not. */
  error: string | null;
  statements: StatementInput[];
}

/**
 * The slowest statements by mean time (over `slowMeanMillis`), and the ones with the most total
 * time (they may read a scan-heavy table), summed over users, in the current database.
 */
export async function readStatements(
  client: pg.Client,
  major: number,
  options: { slowMeanMillis: number; slowLimit?: number; totalLimit?: number; textLimit?: number },
): Promise<StatementsRead> {
  const ext = await client.query<{ schema: string }>(
    `SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
      WHERE e.extname = 'pg_stat_statements'`,
  );
  const schema = ext.rows[0]?.schema;
  if (schema === undefined) {
    return {
      available: false,
      error:
        'the pg_stat_statements extension is not created in this database (CREATE EXTENSION pg_stat_statements)',
      statements: [],
    };
  }
  // Renamed in 13: total_time became total_exec_time. Chosen by version, never from input.
  const total = major >= 13 ? 'total_exec_time' : 'total_time';
  const view = `${client.escapeIdentifier(schema)}.pg_stat_statements`;
  try {
    const res = await client.query(
      `WITH s AS (
         SELECT queryid, min(left(query, $4)) AS query, sum(calls)::float8 AS calls,
                sum(${total})::float8 AS total_ms
           FROM ${view}
          WHERE calls > 0 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          GROUP BY queryid)
       (SELECT queryid::text AS query_id, query, calls, total_ms, total_ms / calls AS mean_ms FROM s
         WHERE total_ms / calls > $1 ORDER BY total_ms / calls DESC LIMIT $2)
       UNION
       (SELECT queryid::text AS query_id, query, calls, total_ms, total_ms / calls AS mean_ms FROM s
         ORDER BY total_ms DESC LIMIT $3)
       ORDER BY mean_ms DESC`,
      [
        options.slowMeanMillis,
        options.slowLimit ?? 100,
        options.totalLimit ?? 100,
        options.textLimit ?? 50_000,
      ],
    );
    return {
      available: true,
      error: null,
      statements: res.rows.map((r) => ({
        queryId: r.query_id,
        query: r.query ?? '',
        calls: Number(r.calls),
        meanMs: Number(r.mean_ms),
        totalMs: Number(r.total_ms),
      })),
    };
  } catch (err) {
    return {
      available: false,
      error: `pg_stat_statements could not be read: ${(err as Error).message}`,
      statements: [],
    };
  }
}

/** Tables read mostly by sequential scans that read at least `seqScanRowsRead` rows. */
export async function readHeavyTables(
  client: pg.Client,
  seqScanRowsRead: number,
  limit = 50,
): Promise<RelationName[]> {
  const res = await client.query<{ schema: string; name: string }>(
    `SELECT schemaname AS schema, relname AS name FROM pg_stat_user_tables
      WHERE seq_tup_read >= $1 AND seq_scan > coalesce(idx_scan, 0)
      ORDER BY seq_tup_read DESC LIMIT $2`,
    [seqScanRowsRead, limit],
  );
  return res.rows.map((r) => ({ schema: r.schema, name: r.name }));
}

const PATTERN_OPS: Record<string, string> = {
  text: 'text_pattern_ops',
  varchar: 'varchar_pattern_ops',
  bpchar: 'bpchar_pattern_ops',
};

/** Columns, indexes and statistics of the named relations (any schema but the system ones). */
export async function readCatalog(
  client: pg.Client,
  facts: Pick<ServerFacts, 'searchPath' | 'collationC'>,
  relations: RelationName[],
): Promise<Catalog> {
  const names = [...new Set(relations.map((r) => r.name))];
  if (names.length === 0) return { searchPath: facts.searchPath, tables: [] };
  const rels = await client.query(
    `SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
            coalesce(s.n_live_tup, 0)::float8 AS live, greatest(c.reltuples, 0)::float8 AS reltuples,
            CASE WHEN c.relkind IN ('r', 'm', 'p') THEN pg_total_relation_size(c.oid) ELSE 0 END::float8 AS bytes,
            coalesce(s.seq_scan, 0)::float8 AS seq_scan, coalesce(s.seq_tup_read, 0)::float8 AS seq_tup_read,
            s.idx_scan::float8 AS idx_scan
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
      WHERE c.relkind IN ('r', 'p', 'm', 'v', 'f')
        AND c.relname = ANY($1::text[])
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`,
    [names],
  );
  const wanted = rels.rows.filter((r) =>
    relations.some((rel) => rel.name === r.name && (rel.schema === null || rel.schema === r.schema)),
  );
  const oids = wanted.map((r) => String(r.oid));
  const cols = await client.query(
    `SELECT a.attrelid::int8 AS oid, a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type,
            bt.typname::text AS base,
            coalesce(co.collname::text, '') AS collation,
            EXISTS (
              SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
               WHERE am.amname = 'btree' AND oc.opcdefault
                 AND (oc.opcintype = bt.oid
                      OR (oc.opcintype = 'anyarray'::regtype AND bt.typcategory = 'A')
                      OR (oc.opcintype = 'anyenum'::regtype AND bt.typtype = 'e')
                      OR (oc.opcintype = 'anyrange'::regtype AND bt.typtype = 'r')
                      OR (oc.opcintype = to_regtype('anymultirange') AND bt.typtype = 'm')
                      OR EXISTS (SELECT 1 FROM pg_cast pc WHERE pc.castsource = bt.oid
                                    AND pc.casttarget = oc.opcintype AND pc.castmethod = 'b'))) AS btree
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
       LEFT JOIN pg_collation co ON co.oid = a.attcollation
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attrelid, a.attnum`,
    [oids],
  );
  const idx = await client.query(
    `SELECT i.indrelid::int8 AS oid, ic.relname::text AS name, am.amname::text AS method,
            i.indpred IS NOT NULL AS partial, (i.indisvalid AND i.indisready) AS valid,
            array(SELECT a.attname::text
                    FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0
                   WHERE k.ord <= i.indnkeyatts
                   ORDER BY k.ord) AS columns,
            (SELECT opcname::text FROM pg_opclass WHERE oid = i.indclass[0]) AS leading_opclass,
            (SELECT collname::text FROM pg_collation WHERE oid = i.indcollation[0]) AS leading_collation,
            pg_get_indexdef(i.indexrelid) AS definition
       FROM pg_index i
       JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_am am ON am.oid = ic.relam
      WHERE i.indrelid = ANY($1::oid[])
      ORDER BY ic.relname`,
    [oids],
  );
  const isC = (collation: string | null | undefined): boolean =>
    collation === 'C' || collation === 'POSIX' || (collation === 'default' && facts.collationC);
  const tables: CatalogTable[] = wanted.map((r) => {
    const columns: CatalogColumn[] = cols.rows
      .filter((c) => String(c.oid) === String(r.oid))
      .map((c) => ({
        name: c.name,
        type: c.type,
        btree: c.btree,
        patternOps: PATTERN_OPS[c.base] ?? null,
        collationC: isC(c.collation),
      }));
    const indexes: CatalogIndex[] = idx.rows
      .filter((i) => String(i.oid) === String(r.oid))
      .map((i) => {
        const leading = (i.columns as (string | null)[])[0];
        const column = columns.find((c) => c.name === leading);
        return {
          name: i.name,
          columns: i.columns,
          method: i.method,
          partial: i.partial,
          valid: i.valid,
          leadingOpclass: i.leading_opclass ?? null,
          // No collation on the index column: it follows the column's.
          leadingCollationC:
            i.leading_collation === null || i.leading_collation === undefined
              ? (column?.collationC ?? false)
              : i.leading_collation === 'default'
                ? (column?.collationC ?? facts.collationC)
                : isC(i.leading_collation),
          definition: i.definition,
        };
      });
    const live = Number(r.live);
    return {
      schema: r.schema,
      name: r.name,
      kind: r.relkind === 'p' ? 'partitioned' : r.relkind === 'r' || r.relkind === 'm' ? 'table' : 'other',
      columns,
      indexes,
      stats: {
        rows: live > 0 ? live : Number(r.reltuples),
        totalBytes: Number(r.bytes),
        seqScan: Number(r.seq_scan),
        seqTupRead: Number(r.seq_tup_read),
        idxScan: r.idx_scan === null ? null : Number(r.idx_scan),
      },
    };
  });
  const schemas = [...new Set(tables.map((t) => t.schema))];
  const taken = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname::text AS schema, c.relname::text AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($1::text[]) AND c.relname LIKE 'idx\\_%'`,
    [schemas],
  );
  return { searchPath: facts.searchPath, tables, takenNames: taken.rows };
}
