/**
 * The audit log: one JSON line per action and per refusal — when, which session (pid,
 * backend_start), whose (user, application), what (action, rule, reason), the query's fingerprint
 * (never its text: it may hold patient data), and what happened.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface AuditEntry {
  at: string;
  event: 'cancel' | 'terminate' | 'refuse';
  pid: number;
  backendStart: string;
  user: string | null;
  application: string;
  queryFingerprint: string | null;
  rule: string;
  reason: string;
  result: 'ok' | 'gone' | 'no_longer_guilty' | 'failed' | 'refused' | 'dry_run';
  error?: string;
  dryRun: boolean;
  database?: string;
}

/** Where the CLI keeps its audit log unless told otherwise. */
export function defaultAuditPath(env: Record<string, string | undefined> = process.env): string {
  if (env.PGWARDEN_AUDIT_LOG) return env.PGWARDEN_AUDIT_LOG;
  const state = env.XDG_STATE_HOME ?? path.join(os.homedir(), '.local', 'state');
  return path.join(state, 'pgwarden', 'audit.jsonl');
}

/** A short, stable fingerprint of a query text (sha256, 16 hex digits). */
export function fingerprint(query: string | null): string | null {
  if (query === null) return null;
  const normalized = query.replace(/\s+/g, ' ').trim();
  return createHash('sha256').update(normalized).digest('hex').slice(0, 16);
}

export interface AuditSink {
  write(entry: AuditEntry): void;
  /** Sessions acted on (each ladder counts once, from its cancel) since `sinceMs` (epoch ms). */
  actionsSince(sinceMs: number): number;
}

export class FileAuditLog implements AuditSink {
  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
  }

  write(entry: AuditEntry): void {
    appendFileSync(this.file, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
  }

  entries(): AuditEntry[] {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return [];
    }
    const out: AuditEntry[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as AuditEntry);
      } catch {
        // a torn last line after a crash: skip it, keep the rest
      }
    }
    return out;
  }

  actionsSince(sinceMs: number): number {
    return countActions(this.entries(), sinceMs);
  }
}

/** An in-memory log (tests, and the agent before its store is open). */
export class MemoryAuditLog implements AuditSink {
  readonly entries: AuditEntry[] = [];

  write(entry: AuditEntry): void {
    this.entries.push(entry);
  }

  actionsSince(sinceMs: number): number {
    return countActions(this.entries, sinceMs);
  }
}

/**
 * Sessions signalled since `sinceMs` (what the hourly budget counts): one per session, whether the
 * ladder cancelled and then terminated it or terminated it at once.
 */
function countActions(entries: AuditEntry[], sinceMs: number): number {
  const sessions = new Set<string>();
  for (const e of entries) {
    if (e.event === 'refuse' || e.dryRun || e.result !== 'ok' || Date.parse(e.at) < sinceMs) continue;
    sessions.add(`${e.pid}@${e.backendStart}`);
  }
  return sessions.size;
}
