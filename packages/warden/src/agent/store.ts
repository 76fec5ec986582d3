/**
 * The agent's own state, in SQLite (better-sqlite3): incidents, their timelines, notification
 * attempts, the remedy audit log, usage samples and the snapshots taken when an incident opened and
 * at its peak. Never the monitored database: that is the thing that is down.
 *
 * WAL mode with `synchronous = NORMAL`: a commit survives a crash of the agent (kill -9) as soon as
 * the call returns. Acknowledgements and manual resolutions go through `transaction(fn, { durable:
 * true })`, which commits with `synchronous = FULL` (the WAL is fsynced before the call returns), so
 * they survive a power loss too.
 *
 * Times are epoch milliseconds (integers: fractional input is floored). Every value is a bound
 * parameter of a prepared statement.
 */
import { mkdirSync, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { type Clock, systemClock } from '@pgwarden/pool';
import type { AuditEntry, AuditSink } from '../remedy/audit.js';
import type { Snapshot } from '../snapshot.js';
import type {
  EscalationLevel,
  Incident,
  IncidentState,
  Notification,
  Observation,
  TimelineEntry,
} from './types.js';

// ---------------------------------------------------------------------------------------------------
// Public types

/** One delivery attempt of a notification by one notifier. */
export interface NotificationRecord {
  incidentId: string;
  /** Notifier id, e.g. "database-team". */
  notifier: string;
  event: Notification['event'];
  level: number;
  /** 1 for the first try, 2 for the first retry, … */
  attempt: number;
  at: number;
  ok: boolean;
  /** Status or error text: what the other side answered ("HTTP 202", "250 2.0.0 OK") or what failed. */
  detail?: string | null;
}

export type SnapshotLabel = 'open' | 'peak';

export interface StoredSnapshot {
  incidentId: string;
  label: SnapshotLabel;
  at: number;
  /** The measured value (AlertEvent.value) when the snapshot was taken, when known. */
  value: number | null;
  snapshot: Snapshot;
}

/** One database's connection usage at one moment (the dashboard's history and the report's chart). */
export interface Sample {
  database: string;
  at: number;
  /** Client backends / usable slots, 0..1 (may exceed 1). */
  usage: number;
  /** Client backends. */
  total: number;
  /** max_connections − superuser_reserved − reserved. */
  usable: number;
  /** Clients queued for a connection: PgBouncer cl_waiting plus the application pools' waiters. */
  waiting: number;
  active?: number | null;
  idle?: number | null;
  idleInTransaction?: number | null;
  /** Sessions waiting on a lock. */
  blocked?: number | null;
  /** The longest running active query, in seconds. */
  longestQuerySeconds?: number | null;
}

export interface StoredSample extends Sample {
  /** Width of the bucket this row stands for: 10 000 (last 24 h) or 60 000 (last 30 days). */
  resolutionMillis: number;
}

export interface IncidentQuery {
  state?: IncidentState | IncidentState[];
  database?: string;
  ruleId?: string;
  /** Newest first; all when absent. */
  limit?: number;
}

export interface SampleQuery {
  since?: number;
  until?: number;
  /** 'auto' (default): 10-second rows where they exist, 1-minute rows before them. */
  resolution?: 'auto' | '10s' | '1m';
}

export interface StoreOptions {
  /** For `schema_version.applied_at` and snapshot times when none is given. Default: systemClock. */
  clock?: Clock;
}

/** Downsampling tiers: one row per database per bucket, kept for `keepMillis`. */
export const SAMPLE_TIERS = [
  { resolutionMillis: 10_000, keepMillis: 24 * 60 * 60_000 },
  { resolutionMillis: 60_000, keepMillis: 30 * 24 * 60 * 60_000 },
] as const;

// ---------------------------------------------------------------------------------------------------
// Schema

interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** Append-only: never edit a released migration, add the next number. */
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'incidents, timeline, notifications, audit, samples, snapshots',
    sql: `
      CREATE TABLE incidents (
        id               TEXT PRIMARY KEY,
        rule_id          TEXT NOT NULL,
        database         TEXT NOT NULL,
        severity         TEXT NOT NULL CHECK (severity IN ('warning', 'critical')),
        state            TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
        title            TEXT NOT NULL,
        summary          TEXT,
        opened_at        INTEGER NOT NULL,
        acknowledged_at  INTEGER,
        acknowledged_by  TEXT,
        resolved_at      INTEGER,
        resolved_by      TEXT,
        escalation_level INTEGER NOT NULL DEFAULT 0,
        policy           TEXT NOT NULL,
        clear_since      INTEGER,
        peak_value       REAL
      ) STRICT;
      CREATE INDEX incidents_state ON incidents (state, opened_at);
      CREATE INDEX incidents_opened ON incidents (opened_at, id);
      -- At most one live incident per rule and database.
      CREATE UNIQUE INDEX incidents_live ON incidents (rule_id, database)
        WHERE state IN ('open', 'acknowledged');

      CREATE TABLE timeline (
        seq          INTEGER PRIMARY KEY,
        incident_id  TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        at           INTEGER NOT NULL,
        kind         TEXT NOT NULL,
        text         TEXT NOT NULL,
        data         TEXT
      ) STRICT;
      CREATE INDEX timeline_incident ON timeline (incident_id, at, seq);

      CREATE TABLE notifications (
        seq          INTEGER PRIMARY KEY,
        incident_id  TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        notifier     TEXT NOT NULL,
        event        TEXT NOT NULL,
        level        INTEGER NOT NULL,
        attempt      INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        ok           INTEGER NOT NULL,
        detail       TEXT
      ) STRICT;
      CREATE INDEX notifications_incident ON notifications (incident_id, seq);

      CREATE TABLE audit (
        seq               INTEGER PRIMARY KEY,
        at                TEXT NOT NULL,
        at_ms             INTEGER,
        event             TEXT NOT NULL,
        pid               INTEGER NOT NULL,
        backend_start     TEXT NOT NULL,
        user              TEXT,
        application       TEXT NOT NULL,
        query_fingerprint TEXT,
        rule              TEXT NOT NULL,
        reason            TEXT NOT NULL,
        result            TEXT NOT NULL,
        error             TEXT,
        dry_run           INTEGER NOT NULL,
        database          TEXT
      ) STRICT;
      CREATE INDEX audit_at ON audit (at_ms);

      CREATE TABLE samples (
        database              TEXT NOT NULL,
        resolution            INTEGER NOT NULL,
        bucket                INTEGER NOT NULL,
        at                    INTEGER NOT NULL,
        usage                 REAL NOT NULL,
        total                 INTEGER NOT NULL,
        usable                INTEGER NOT NULL,
        waiting               INTEGER NOT NULL,
        active                INTEGER,
        idle                  INTEGER,
        idle_in_transaction   INTEGER,
        blocked               INTEGER,
        longest_query_seconds REAL,
        PRIMARY KEY (database, resolution, bucket)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE snapshots (
        incident_id  TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        label        TEXT NOT NULL CHECK (label IN ('open', 'peak')),
        at           INTEGER NOT NULL,
        value        REAL,
        snapshot     TEXT NOT NULL,
        PRIMARY KEY (incident_id, label)
      ) STRICT;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

// ---------------------------------------------------------------------------------------------------
// Rows

interface IncidentRow {
  id: string;
  rule_id: string;
  database: string;
  severity: Incident['severity'];
  state: IncidentState;
  title: string;
  summary: string | null;
  opened_at: number;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  resolved_at: number | null;
  resolved_by: string | null;
  escalation_level: number;
  policy: string;
  clear_since: number | null;
  peak_value: number | null;
}

interface TimelineRow {
  incident_id: string;
  at: number;
  kind: TimelineEntry['kind'];
  text: string;
  data: string | null;
}

interface NotificationRow {
  incident_id: string;
  notifier: string;
  event: Notification['event'];
  level: number;
  attempt: number;
  at: number;
  ok: number;
  detail: string | null;
}

interface AuditRow {
  at: string;
  event: AuditEntry['event'];
  pid: number;
  backend_start: string;
  user: string | null;
  application: string;
  query_fingerprint: string | null;
  rule: string;
  reason: string;
  result: AuditEntry['result'];
  error: string | null;
  dry_run: number;
  database: string | null;
}

interface SampleRow {
  database: string;
  resolution: number;
  bucket: number;
  at: number;
  usage: number;
  total: number;
  usable: number;
  waiting: number;
  active: number | null;
  idle: number | null;
  idle_in_transaction: number | null;
  blocked: number | null;
  longest_query_seconds: number | null;
}

interface SnapshotRow {
  incident_id: string;
  label: SnapshotLabel;
  at: number;
  value: number | null;
  snapshot: string;
}

const INCIDENT_COLUMNS = `id, rule_id, database, severity, state, title, summary, opened_at, acknowledged_at,
  acknowledged_by, resolved_at, resolved_by, escalation_level, policy, clear_since, peak_value`;

/** Epoch ms as an integer (SQLite STRICT INTEGER columns refuse fractions). */
function ms(value: number): number {
  if (!Number.isFinite(value)) throw new RangeError(`store: time must be a finite number, got ${value}`);
  return Math.floor(value);
}

function msOrNull(value: number | null | undefined): number | null {
  return value === null || value === undefined ? null : ms(value);
}

function count(value: number | null | undefined): number | null {
  return value === null || value === undefined || !Number.isFinite(value) ? null : Math.round(value);
}

function finiteOrNull(value: number | null | undefined): number | null {
  return value === null || value === undefined || !Number.isFinite(value) ? null : value;
}

/** JSON that does not throw on bigint (pg returns int8 as string, but evidence may hold bigints). */
function toJson(value: unknown): string | null {
  if (value === undefined) return null;
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

function fromJson(text: string | null): unknown {
  return text === null ? undefined : JSON.parse(text);
}

function incidentFromRow(row: IncidentRow): Incident {
  const incident: Incident = {
    id: row.id,
    ruleId: row.rule_id,
    database: row.database,
    severity: row.severity,
    state: row.state,
    title: row.title,
    openedAt: row.opened_at,
    acknowledgedAt: row.acknowledged_at,
    acknowledgedBy: row.acknowledged_by,
    resolvedAt: row.resolved_at,
    resolvedBy: row.resolved_by,
    escalationLevel: row.escalation_level,
    policy: JSON.parse(row.policy) as EscalationLevel[],
    clearSince: row.clear_since,
  };
  if (row.summary !== null) incident.summary = row.summary;
  if (row.peak_value !== null) incident.peakValue = row.peak_value;
  return incident;
}

function incidentParams(incident: Incident): IncidentRow {
  return {
    id: incident.id,
    rule_id: incident.ruleId,
    database: incident.database,
    severity: incident.severity,
    state: incident.state,
    title: incident.title,
    summary: incident.summary ?? null,
    opened_at: ms(incident.openedAt),
    acknowledged_at: msOrNull(incident.acknowledgedAt),
    acknowledged_by: incident.acknowledgedBy,
    resolved_at: msOrNull(incident.resolvedAt),
    resolved_by: incident.resolvedBy,
    escalation_level: incident.escalationLevel,
    policy: JSON.stringify(incident.policy),
    clear_since: msOrNull(incident.clearSince),
    peak_value: finiteOrNull(incident.peakValue),
  };
}

function sampleFromRow(row: SampleRow): StoredSample {
  return {
    database: row.database,
    at: row.at,
    usage: row.usage,
    total: row.total,
    usable: row.usable,
    waiting: row.waiting,
    active: row.active,
    idle: row.idle,
    idleInTransaction: row.idle_in_transaction,
    blocked: row.blocked,
    longestQuerySeconds: row.longest_query_seconds,
    resolutionMillis: row.resolution,
  };
}

/** The base-36 width of an epoch-ms time in incident ids (9 digits last until the year 5138). */
const ID_TIME_WIDTH = 9;
const ID_SEQ_WIDTH = 2;
const ID_SEQ_LIMIT = 36 ** ID_SEQ_WIDTH;

// ---------------------------------------------------------------------------------------------------

export class Store implements AuditSink {
  readonly file: string;
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #cache = new Map<string, Database.Statement>();
  #closed = false;

  /**
   * Opens (creating when missing) the store at `file`, or an in-memory one for ':memory:'. A new
   * file is created readable by its owner only: snapshots hold query texts.
   */
  constructor(file: string, options: StoreOptions = {}) {
    this.file = file;
    this.#clock = options.clock ?? systemClock;
    const memory = file === ':memory:' || file === '';
    if (!memory) {
      mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
      // Create it 0600 before SQLite does (SQLite gives its -wal and -shm files the same mode).
      closeSync(openSync(file, 'a', 0o600));
    }
    this.#db = new Database(file);
    try {
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = NORMAL');
      this.#db.pragma('foreign_keys = ON');
      this.#db.pragma('busy_timeout = 5000');
      this.#migrate();
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  /** The schema version of the open file. */
  get schemaVersion(): number {
    const row = this.#stmt('SELECT max(version) AS v FROM schema_version').get() as { v: number | null };
    return row.v ?? 0;
  }

  /** The connection's journal mode and current synchronous level (diagnostics, tests). */
  settings(): { journalMode: string; synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA' } {
    if (this.#closed) throw new Error(`store ${this.file} is closed`);
    const levels = ['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const;
    return {
      journalMode: String(this.#db.pragma('journal_mode', { simple: true })),
      synchronous: levels[Number(this.#db.pragma('synchronous', { simple: true }))] ?? 'FULL',
    };
  }

  get closed(): boolean {
    return this.#closed;
  }

  #migrate(): void {
    const db = this.#db;
    db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
      version INTEGER PRIMARY KEY,
      description TEXT NOT NULL,
      applied_at INTEGER NOT NULL
    ) STRICT`);
    const current =
      (db.prepare('SELECT max(version) AS v FROM schema_version').get() as { v: number | null }).v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(
        `store ${this.file}: schema version ${current} was written by a newer pgwarden (this one knows up to ${SCHEMA_VERSION})`,
      );
    }
    const record = db.prepare(
      'INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)',
    );
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      db.transaction(() => {
        db.exec(migration.sql);
        record.run(migration.version, migration.description, ms(this.#clock.now()));
      })();
    }
  }

  #stmt(sql: string): Database.Statement {
    if (this.#closed) throw new Error(`store ${this.file} is closed`);
    let stmt = this.#cache.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#cache.set(sql, stmt);
    }
    return stmt;
  }

  /**
   * Runs `fn` in one transaction (nested calls become savepoints). `durable: true` commits with
   * `synchronous = FULL`: when this returns, the change is on disk, not only in the OS's cache.
   */
  transaction<T>(fn: () => T, options: { durable?: boolean } = {}): T {
    if (this.#closed) throw new Error(`store ${this.file} is closed`);
    const run = this.#db.transaction(fn);
    // Inside an outer transaction, the outer commit decides (and PRAGMA synchronous would not apply).
    if (!options.durable || this.#db.inTransaction) return run();
    this.#db.pragma('synchronous = FULL');
    try {
      return run();
    } finally {
      this.#db.pragma('synchronous = NORMAL');
    }
  }

  // -- incidents -------------------------------------------------------------------------------------

  /**
   * A new incident id: short (11 characters), unique in this store, and sortable by opening time
   * (base-36 epoch ms, then a 2-digit sequence for incidents opened in the same millisecond).
   */
  nextIncidentId(at: number): string {
    for (let t = ms(at); ; t++) {
      const prefix = t.toString(36).padStart(ID_TIME_WIDTH, '0');
      const row = this.#stmt('SELECT max(id) AS id FROM incidents WHERE id >= ? AND id < ?').get(
        prefix,
        `${prefix}~`,
      ) as { id: string | null };
      if (row.id === null) return prefix + '0'.repeat(ID_SEQ_WIDTH);
      const seq = Number.parseInt(row.id.slice(ID_TIME_WIDTH), 36) + 1;
      if (Number.isFinite(seq) && seq < ID_SEQ_LIMIT) {
        return prefix + seq.toString(36).padStart(ID_SEQ_WIDTH, '0');
      }
    }
  }

  insertIncident(incident: Incident): void {
    this.#stmt(
      `INSERT INTO incidents (${INCIDENT_COLUMNS}) VALUES (@id, @rule_id, @database, @severity, @state, @title,
        @summary, @opened_at, @acknowledged_at, @acknowledged_by, @resolved_at, @resolved_by, @escalation_level,
        @policy, @clear_since, @peak_value)`,
    ).run(incidentParams(incident));
  }

  /** Writes every field of `incident` (found by id). Throws when there is no such incident. */
  updateIncident(incident: Incident): void {
    const info = this.#stmt(
      `UPDATE incidents SET rule_id = @rule_id, database = @database, severity = @severity, state = @state,
        title = @title, summary = @summary, opened_at = @opened_at, acknowledged_at = @acknowledged_at,
        acknowledged_by = @acknowledged_by, resolved_at = @resolved_at, resolved_by = @resolved_by,
        escalation_level = @escalation_level, policy = @policy, clear_since = @clear_since,
        peak_value = @peak_value
       WHERE id = @id`,
    ).run(incidentParams(incident));
    if (info.changes === 0) throw new Error(`store: no incident ${JSON.stringify(incident.id)} to update`);
  }

  incident(id: string): Incident | undefined {
    const row = this.#stmt(`SELECT ${INCIDENT_COLUMNS} FROM incidents WHERE id = ?`).get(id) as
      | IncidentRow
      | undefined;
    return row ? incidentFromRow(row) : undefined;
  }

  /** The live (open or acknowledged) incident of a rule on a database, if any. */
  openIncidentFor(ruleId: string, database: string): Incident | undefined {
    const row = this.#stmt(
      `SELECT ${INCIDENT_COLUMNS} FROM incidents
        WHERE rule_id = ? AND database = ? AND state IN ('open', 'acknowledged')`,
    ).get(ruleId, database) as IncidentRow | undefined;
    return row ? incidentFromRow(row) : undefined;
  }

  /** Incidents, newest first. */
  incidents(query: IncidentQuery = {}): Incident[] {
    const states = query.state === undefined ? [] : Array.isArray(query.state) ? query.state : [query.state];
    const where: string[] = [];
    const values: unknown[] = [];
    if (states.length > 0) {
      where.push(`state IN (${states.map(() => '?').join(', ')})`);
      values.push(...states);
    }
    if (query.database !== undefined) {
      where.push('database = ?');
      values.push(query.database);
    }
    if (query.ruleId !== undefined) {
      where.push('rule_id = ?');
      values.push(query.ruleId);
    }
    const limit = query.limit === undefined ? -1 : Math.max(0, Math.floor(query.limit));
    const sql = `SELECT ${INCIDENT_COLUMNS} FROM incidents ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY opened_at DESC, id DESC LIMIT ?`;
    const rows = this.#stmt(sql).all(...values, limit) as IncidentRow[];
    return rows.map(incidentFromRow);
  }

  // -- timeline --------------------------------------------------------------------------------------

  addTimeline(entry: TimelineEntry): void {
    this.#stmt('INSERT INTO timeline (incident_id, at, kind, text, data) VALUES (?, ?, ?, ?, ?)').run(
      entry.incidentId,
      ms(entry.at),
      entry.kind,
      entry.text,
      toJson(entry.data),
    );
  }

  /** An incident's timeline, oldest first (entries at the same ms in the order they were written). */
  timeline(incidentId: string): TimelineEntry[] {
    const rows = this.#stmt(
      'SELECT incident_id, at, kind, text, data FROM timeline WHERE incident_id = ? ORDER BY at, seq',
    ).all(incidentId) as TimelineRow[];
    return rows.map((row) => {
      const entry: TimelineEntry = {
        incidentId: row.incident_id,
        at: row.at,
        kind: row.kind,
        text: row.text,
      };
      if (row.data !== null) entry.data = fromJson(row.data);
      return entry;
    });
  }

  // -- notifications ---------------------------------------------------------------------------------

  recordNotification(record: NotificationRecord): void {
    this.#stmt(
      `INSERT INTO notifications (incident_id, notifier, event, level, attempt, at, ok, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      record.incidentId,
      record.notifier,
      record.event,
      record.level,
      record.attempt,
      ms(record.at),
      record.ok ? 1 : 0,
      record.detail ?? null,
    );
  }

  /** An incident's notification attempts, in the order they were recorded. */
  notifications(incidentId: string): NotificationRecord[] {
    const rows = this.#stmt(
      `SELECT incident_id, notifier, event, level, attempt, at, ok, detail
         FROM notifications WHERE incident_id = ? ORDER BY seq`,
    ).all(incidentId) as NotificationRow[];
    return rows.map((row) => ({
      incidentId: row.incident_id,
      notifier: row.notifier,
      event: row.event,
      level: row.level,
      attempt: row.attempt,
      at: row.at,
      ok: row.ok === 1,
      detail: row.detail,
    }));
  }

  // -- snapshots -------------------------------------------------------------------------------------

  /** Saves (replacing the previous one with the same label) a snapshot of the server for an incident. */
  saveSnapshot(
    incidentId: string,
    label: SnapshotLabel,
    snapshot: Snapshot,
    options: { at?: number; value?: number } = {},
  ): void {
    this.#stmt(
      `INSERT INTO snapshots (incident_id, label, at, value, snapshot) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (incident_id, label) DO UPDATE SET at = excluded.at, value = excluded.value,
         snapshot = excluded.snapshot`,
    ).run(
      incidentId,
      label,
      ms(options.at ?? this.#clock.now()),
      finiteOrNull(options.value),
      toJson(snapshot),
    );
  }

  /** An incident's snapshots: 'open' first, then 'peak'. */
  snapshots(incidentId: string): StoredSnapshot[] {
    const rows = this.#stmt(
      `SELECT incident_id, label, at, value, snapshot FROM snapshots WHERE incident_id = ?
        ORDER BY CASE label WHEN 'open' THEN 0 ELSE 1 END`,
    ).all(incidentId) as SnapshotRow[];
    return rows.map((row) => ({
      incidentId: row.incident_id,
      label: row.label,
      at: row.at,
      value: row.value,
      snapshot: JSON.parse(row.snapshot) as Snapshot,
    }));
  }

  // -- audit (the remedy executor's AuditSink) -----------------------------------------------------

  write(entry: AuditEntry): void {
    const atMs = Date.parse(entry.at);
    this.#stmt(
      `INSERT INTO audit (at, at_ms, event, pid, backend_start, user, application, query_fingerprint, rule,
         reason, result, error, dry_run, database)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      entry.at,
      Number.isFinite(atMs) ? atMs : null,
      entry.event,
      entry.pid,
      entry.backendStart,
      entry.user,
      entry.application,
      entry.queryFingerprint,
      entry.rule,
      entry.reason,
      entry.result,
      entry.error ?? null,
      entry.dryRun ? 1 : 0,
      entry.database ?? null,
    );
  }

  /** Sessions acted on since `sinceMs` (each ladder counts once, from its successful, real cancel). */
  actionsSince(sinceMs: number): number {
    const row = this.#stmt(
      `SELECT count(*) AS n FROM (
         SELECT DISTINCT pid, backend_start FROM audit
          WHERE event IN ('cancel', 'terminate') AND dry_run = 0 AND result = 'ok' AND at_ms >= ?)`,
    ).get(sinceMs) as { n: number };
    return row.n;
  }

  /** Audit entries, oldest first. */
  auditEntries(query: { since?: number; limit?: number } = {}): AuditEntry[] {
    const rows = this.#stmt(
      `SELECT at, event, pid, backend_start, user, application, query_fingerprint, rule, reason, result, error,
              dry_run, database
         FROM audit WHERE ? IS NULL OR at_ms >= ? ORDER BY seq LIMIT ?`,
    ).all(query.since ?? null, query.since ?? null, query.limit ?? -1) as AuditRow[];
    return rows.map((row) => {
      const entry: AuditEntry = {
        at: row.at,
        event: row.event,
        pid: row.pid,
        backendStart: row.backend_start,
        user: row.user,
        application: row.application,
        queryFingerprint: row.query_fingerprint,
        rule: row.rule,
        reason: row.reason,
        result: row.result,
        dryRun: row.dry_run === 1,
      };
      if (row.error !== null) entry.error = row.error;
      if (row.database !== null) entry.database = row.database;
      return entry;
    });
  }

  // -- samples ---------------------------------------------------------------------------------------

  /**
   * Records a sample into both tiers (10-second and 1-minute buckets). A bucket keeps its busiest
   * sample (highest usage, then most waiting), so downsampling never hides a peak.
   */
  addSample(sample: Sample): void {
    const stmt = this.#stmt(
      `INSERT INTO samples (database, resolution, bucket, at, usage, total, usable, waiting, active, idle,
         idle_in_transaction, blocked, longest_query_seconds)
       VALUES (@database, @resolution, @bucket, @at, @usage, @total, @usable, @waiting, @active, @idle,
         @idle_in_transaction, @blocked, @longest_query_seconds)
       ON CONFLICT (database, resolution, bucket) DO UPDATE SET
         at = excluded.at, usage = excluded.usage, total = excluded.total, usable = excluded.usable,
         waiting = excluded.waiting, active = excluded.active, idle = excluded.idle,
         idle_in_transaction = excluded.idle_in_transaction, blocked = excluded.blocked,
         longest_query_seconds = excluded.longest_query_seconds
       WHERE excluded.usage > samples.usage
          OR (excluded.usage = samples.usage AND excluded.waiting > samples.waiting)`,
    );
    const at = ms(sample.at);
    if (!Number.isFinite(sample.usage)) throw new RangeError(`store: sample usage must be finite`);
    const base = {
      database: sample.database,
      at,
      usage: sample.usage,
      total: count(sample.total) ?? 0,
      usable: count(sample.usable) ?? 0,
      waiting: count(sample.waiting) ?? 0,
      active: count(sample.active),
      idle: count(sample.idle),
      idle_in_transaction: count(sample.idleInTransaction),
      blocked: count(sample.blocked),
      longest_query_seconds: finiteOrNull(sample.longestQuerySeconds),
    };
    this.transaction(() => {
      for (const tier of SAMPLE_TIERS) {
        const bucket = Math.floor(at / tier.resolutionMillis) * tier.resolutionMillis;
        stmt.run({ ...base, resolution: tier.resolutionMillis, bucket });
      }
    });
  }

  /** A database's samples in [since, until], oldest first. */
  samples(database: string, query: SampleQuery = {}): StoredSample[] {
    const since = query.since ?? Number.MIN_SAFE_INTEGER;
    const until = query.until ?? Number.MAX_SAFE_INTEGER;
    const tier = (resolution: number, before: number) =>
      (
        this.#stmt(
          `SELECT * FROM samples WHERE database = ? AND resolution = ? AND at >= ? AND at <= ? AND at < ?
            ORDER BY at`,
        ).all(database, resolution, since, until, before) as SampleRow[]
      ).map(sampleFromRow);
    const [fine, coarse] = SAMPLE_TIERS;
    const resolution = query.resolution ?? 'auto';
    if (resolution === '10s') return tier(fine.resolutionMillis, Number.MAX_SAFE_INTEGER);
    if (resolution === '1m') return tier(coarse.resolutionMillis, Number.MAX_SAFE_INTEGER);
    const recent = tier(fine.resolutionMillis, Number.MAX_SAFE_INTEGER);
    const older = tier(coarse.resolutionMillis, recent[0]?.at ?? Number.MAX_SAFE_INTEGER);
    return [...older, ...recent];
  }

  /**
   * Drops 10-second rows older than 24 h and 1-minute rows older than 30 days (a bucket goes when
   * all of it is past the horizon). Returns the number of rows deleted.
   */
  prune(now: number): number {
    const stmt = this.#stmt('DELETE FROM samples WHERE resolution = ? AND bucket + resolution <= ?');
    return this.transaction(() => {
      let deleted = 0;
      for (const tier of SAMPLE_TIERS) {
        deleted += stmt.run(tier.resolutionMillis, ms(now) - tier.keepMillis).changes;
      }
      return deleted;
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cache.clear();
    this.#db.close();
  }
}

/**
 * The sample of one observation, or null when there was no snapshot (server unreachable). `waiting`
 * counts PgBouncer's waiting clients and the application pools' queued requests.
 */
export function sampleFromObservation(observation: Observation): Sample | null {
  const snapshot = observation.snapshot;
  if (!snapshot) return null;
  const { connections } = snapshot;
  const byState = connections.byState;
  let waiting = 0;
  for (const pool of snapshot.pgbouncer?.pools ?? []) waiting += pool.clWaiting;
  for (const source of observation.appPools ?? []) {
    for (const pool of source.pools) waiting += pool.counts.waiting;
  }
  let longest: number | null = null;
  let blocked = 0;
  for (const s of snapshot.sessions) {
    if (s.blockedBy.length > 0) blocked++;
    if (s.state === 'active' && s.queryAgeSeconds !== null)
      longest = Math.max(longest ?? 0, s.queryAgeSeconds);
  }
  return {
    database: observation.database,
    at: observation.at,
    usage: connections.usage,
    total: connections.total,
    usable: connections.usable,
    waiting,
    active: byState.active ?? 0,
    idle: byState.idle ?? 0,
    idleInTransaction:
      (byState['idle in transaction'] ?? 0) + (byState['idle in transaction (aborted)'] ?? 0),
    blocked,
    longestQuerySeconds: longest,
  };
}
