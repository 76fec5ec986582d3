/**
 * `pgwarden doctor --json`: one JSON object, the contract other tools rely on:
 * `{ server, connections, findings, sessions, locks, slowQueries, tables, pgbouncer? }`, plus the
 * status, headline and when the snapshot was taken.
 */
import type { Diagnosis } from '../diagnose/index.js';
import type { Snapshot } from '../snapshot.js';

export interface DoctorReport {
  status: Diagnosis['status'];
  headline: string;
  at: string | null;
  probeMillis: number | null;
  server: Snapshot['server'] | null;
  visibility: Snapshot['visibility'] | null;
  connections: Snapshot['connections'] | null;
  consumers: Snapshot['consumers'];
  findings: Diagnosis['findings'];
  sessions: Snapshot['sessions'];
  locks: Snapshot['locks'];
  slowQueries: Snapshot['statStatements']['top'];
  statStatements: Omit<Snapshot['statStatements'], 'top'> | null;
  tables: Snapshot['tables'];
  pgbouncer?: Snapshot['pgbouncer'];
}

export function doctorReport(snapshot: Snapshot | undefined, diagnosis: Diagnosis): DoctorReport {
  const report: DoctorReport = {
    status: diagnosis.status,
    headline: diagnosis.headline,
    at: snapshot?.at ?? null,
    probeMillis: snapshot?.probeMillis ?? null,
    server: snapshot?.server ?? null,
    visibility: snapshot?.visibility ?? null,
    connections: snapshot?.connections ?? null,
    consumers: snapshot?.consumers ?? [],
    findings: diagnosis.findings,
    sessions: snapshot?.sessions ?? [],
    locks: snapshot?.locks ?? [],
    slowQueries: snapshot?.statStatements.top ?? [],
    statStatements: snapshot
      ? {
          installed: snapshot.statStatements.installed,
          preloaded: snapshot.statStatements.preloaded,
          error: snapshot.statStatements.error,
        }
      : null,
    tables: snapshot?.tables ?? [],
  };
  if (snapshot?.pgbouncer) report.pgbouncer = snapshot.pgbouncer;
  return report;
}

export function renderJson(snapshot: Snapshot | undefined, diagnosis: Diagnosis): string {
  return `${JSON.stringify(doctorReport(snapshot, diagnosis), null, 2)}\n`;
}
