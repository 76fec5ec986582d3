/** Diagnosis thresholds. Defaults come from the runbook; every one can be set from the CLI or config. */
export interface Thresholds {
  /** An active query running longer is long-running (runbook: 5 minutes). */
  longRunningSeconds: number;
  /** Sessions past this are termination candidates (runbook: 10 minutes). */
  terminateAfterSeconds: number;
  /** A statement whose mean time exceeds this is slow (runbook: 1000 ms). */
  slowMeanMillis: number;
  /** Share of usable connections in use that warns (75%). */
  usageWarning: number;
  /** Share of usable connections in use that is critical (90%). */
  usageCritical: number;
  /** A session idle in transaction this long is reported. */
  idleInTransactionSeconds: number;
  /** A consumer holding this share of the connections is named as the main one. */
  dominantConsumerShare: number;
  /** Rows read by sequential scans before a table is called scan-heavy. */
  seqScanRowsRead: number;
  /** PgBouncer clients waiting this long is critical (seconds). */
  pgbouncerMaxWaitSeconds: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  longRunningSeconds: 300,
  terminateAfterSeconds: 600,
  slowMeanMillis: 1000,
  usageWarning: 0.75,
  usageCritical: 0.9,
  idleInTransactionSeconds: 60,
  dominantConsumerShare: 0.5,
  seqScanRowsRead: 1_000_000,
  pgbouncerMaxWaitSeconds: 5,
};
