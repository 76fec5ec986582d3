/** Findings: what diagnosis concludes from a snapshot, with its evidence and the exact next step. */

export type Severity = 'info' | 'warning' | 'critical';

export type FindingId =
  | 'connections.saturation'
  | 'connections.by_consumer'
  | 'sessions.long_running'
  | 'sessions.idle_in_transaction'
  | 'locks.blocking_chain'
  | 'queries.slow'
  | 'tables.seq_scan_heavy'
  | 'config.timeouts_missing'
  | 'config.pool_oversubscribed'
  | 'extension.pg_stat_statements_missing'
  | 'pgbouncer.clients_waiting'
  | 'server.unreachable'
  | 'visibility.limited';

export type ActionKind = 'cancel' | 'terminate' | 'sql' | 'resize_pool' | 'command';

export interface Action {
  kind: ActionKind;
  /** What it acts on: "pid 123", a table, a setting. */
  target: string;
  /** Exactly what a person would run. */
  text: string;
  risk: 'none' | 'low' | 'medium' | 'high';
}

export interface Finding {
  id: FindingId;
  severity: Severity;
  title: string;
  /** One or two sentences a person can act on. */
  summary: string;
  /** Numbers and rows that support it. */
  evidence: Record<string, unknown>;
  /** Backend pids it is about. */
  pids: number[];
  actions: Action[];
  /** How likely this is the cause of the trouble, 0..100 (ranks findings; not shown as a number). */
  score: number;
}
