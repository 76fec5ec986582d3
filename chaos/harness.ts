/**
 * The chaos suite's instruments: a steady write load through a pool that records every request's
 * outcome and flags any that outlives its deadline, a pgwarden agent (Watcher) observing the same
 * server, a guard for unhandled errors and rejections, and the per-fault summary table.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from '@pgwarden/pool';
import { sleep } from '@pgwarden/testkit';
import pg from 'pg';
import { parseConfig } from '../packages/warden/src/agent/config.js';
import type { Observation } from '../packages/warden/src/agent/types.js';
import { Watcher } from '../packages/warden/src/agent/watch.js';

export const TABLE = 'chaos_writes';

export async function createTable(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${TABLE} (id uuid PRIMARY KEY, fault text NOT NULL, at timestamptz NOT NULL DEFAULT now())`,
    );
  } finally {
    await client.end();
  }
}

/** The ids among `ids` that are not in the table (read through a fresh connection). */
export async function missingIds(url: string, ids: string[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: url, application_name: 'chaos-verify' });
  await client.connect();
  try {
    const res = await client.query<{ id: string }>(
      `SELECT x.id FROM unnest($1::uuid[]) AS x(id) WHERE NOT EXISTS (SELECT 1 FROM ${TABLE} t WHERE t.id = x.id)`,
      [ids],
    );
    return res.rows.map((r) => r.id);
  } finally {
    await client.end();
  }
}

/** The error's code: a SQLSTATE, a Node errno code or a PGWARDEN_* code; undefined when it has none. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code !== '' ? code : undefined;
}

export interface Outcome {
  startedAt: number;
  endedAt: number;
  ok: boolean;
  code?: string;
  message?: string;
}

export interface LoadOptions {
  fault: string;
  writers: number;
  /** A request still unsettled this long after it started is a hang. */
  hangAfterMillis: number;
  /** Pause between one writer's requests. */
  pauseMillis?: number;
}

/** `writers` loops, each inserting one row with a client-generated id per request through `pool.query`. */
export class WriteLoad {
  readonly outcomes: Outcome[] = [];
  /** Ids whose INSERT was acknowledged. */
  readonly acked: string[] = [];
  /** Requests that did not settle within hangAfterMillis: what they were, and when they started. */
  readonly hangs: { id: string; startedAt: number }[] = [];
  /** Hung requests that settled later on (still a failure). */
  readonly pending = new Set<Promise<unknown>>();
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly pool: Pool,
    private readonly options: LoadOptions,
  ) {}

  start(): void {
    for (let i = 0; i < this.options.writers; i++) this.loops.push(this.loop());
  }

  /** Stops the writers and waits for each one's request in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      await this.once();
      await sleep(this.options.pauseMillis ?? 10);
    }
  }

  private async once(): Promise<void> {
    const id = randomUUID();
    const startedAt = performance.now();
    const request = this.pool.query(`INSERT INTO ${TABLE} (id, fault) VALUES ($1, $2)`, [
      id,
      this.options.fault,
    ]);
    const settled = request.then(
      () => ({ ok: true as const }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hang'>((resolve) => {
      timer = setTimeout(() => resolve('hang'), this.options.hangAfterMillis);
    });
    const result = await Promise.race([settled, hung]);
    clearTimeout(timer);
    if (result === 'hang') {
      this.hangs.push({ id, startedAt });
      this.pending.add(settled);
      void settled.then(() => this.pending.delete(settled));
      return;
    }
    const endedAt = performance.now();
    if (result.ok) {
      this.acked.push(id);
      this.outcomes.push({ startedAt, endedAt, ok: true });
    } else {
      const code = codeOf(result.error);
      const message = result.error instanceof Error ? result.error.message : String(result.error);
      this.outcomes.push({ startedAt, endedAt, ok: false, ...(code ? { code } : {}), message });
    }
  }

  /** When the first request acknowledged at or after `at` ended; undefined when none was. */
  firstSuccessAfter(at: number): number | undefined {
    let first: number | undefined;
    for (const o of this.outcomes)
      if (o.ok && o.endedAt >= at && (first === undefined || o.endedAt < first)) first = o.endedAt;
    return first;
  }

  /** Requests that failed without a code (a SQLSTATE, errno or PGWARDEN_* code), with their messages. */
  untyped(): string[] {
    return this.outcomes.filter((o) => !o.ok && o.code === undefined).map((o) => o.message ?? '?');
  }

  counts(): { ok: number; failed: Record<string, number>; slowestMillis: number } {
    const failed: Record<string, number> = {};
    let ok = 0;
    let slowest = 0;
    for (const o of this.outcomes) {
      slowest = Math.max(slowest, o.endedAt - o.startedAt);
      if (o.ok) ok++;
      else {
        const key = o.code ?? `untyped: ${o.message}`;
        failed[key] = (failed[key] ?? 0) + 1;
      }
    }
    return { ok, failed, slowestMillis: Math.round(slowest) };
  }
}

/** Records every unhandled rejection and uncaught exception while installed. */
export class UnhandledGuard {
  readonly seen: string[] = [];
  private readonly onRejection = (reason: unknown) => {
    this.seen.push(`unhandledRejection: ${reason instanceof Error ? reason.stack : String(reason)}`);
  };
  private readonly onException = (err: Error) => {
    this.seen.push(`uncaughtException: ${err.stack ?? String(err)}`);
  };

  install(): void {
    process.on('unhandledRejection', this.onRejection);
    process.on('uncaughtException', this.onException);
  }

  uninstall(): void {
    process.off('unhandledRejection', this.onRejection);
    process.off('uncaughtException', this.onException);
  }
}

export interface SeenObservation {
  /** performance.now() when this observation was first seen in `watcher.latest`. */
  seenAt: number;
  /** performance.now() when its tick started (the observation's own clock converted). */
  tickAt: number;
  healthy: boolean;
  unreachable?: string;
}

/** A pgwarden agent in observe mode watching one database, with a record of what it observed. */
export class AgentProbe {
  readonly watcher: Watcher;
  readonly lines: string[] = [];
  readonly observations: SeenObservation[] = [];
  private poller: NodeJS.Timeout | undefined;
  private last: Observation | undefined;
  /** Date.now() - performance.now() at creation, to put observations on the performance clock. */
  private readonly offset = Date.now() - performance.now();

  constructor(url: string) {
    const config = parseConfig({
      databases: [{ name: 'chaos', url }],
      interval: 1, // seconds
      mode: 'observe',
      store: ':memory:',
      notifiers: [],
    });
    this.watcher = new Watcher({ config, env: {}, storePath: ':memory:', log: (l) => this.lines.push(l) });
  }

  async start(): Promise<void> {
    await this.watcher.start();
    this.poller = setInterval(() => this.poll(), 20);
    this.poll();
  }

  async stop(): Promise<void> {
    clearInterval(this.poller);
    this.poll();
    await this.watcher.stop();
  }

  private poll(): void {
    const obs = this.watcher.latest.get('chaos');
    if (obs === undefined || obs === this.last) return;
    this.last = obs;
    this.observations.push({
      seenAt: performance.now(),
      tickAt: obs.at - this.offset,
      healthy: obs.snapshot !== undefined && obs.unreachable === undefined,
      ...(obs.unreachable ? { unreachable: obs.unreachable.code } : {}),
    });
  }

  /** Lines the agent logged that say something threw inside it. */
  failures(): string[] {
    return this.lines.filter((l) => /tick failed|threw|crash|unhandled/i.test(l));
  }

  /** Unreachable observations whose tick started in [from, to]. */
  unreachableBetween(from: number, to: number): SeenObservation[] {
    return this.observations.filter((o) => o.unreachable !== undefined && o.tickAt >= from && o.tickAt <= to);
  }

  /** When the first healthy observation from a tick started at or after `at` was seen. */
  healthyAfter(at: number): number | undefined {
    return this.observations.find((o) => o.healthy && o.tickAt >= at)?.seenAt;
  }
}

export interface FaultRow {
  fault: string;
  ok: number;
  failed: Record<string, number>;
  slowestMillis: number;
  recoveryMillis: number | undefined;
  agentRecoveryMillis: number | undefined;
  agentUnreachable: number;
}

export function printTable(rows: FaultRow[]): void {
  const header = [
    'fault',
    'ok',
    'failed (by code)',
    'slowest ms',
    'pool recovery ms',
    'agent healthy ms',
    'agent unreachable',
  ];
  const body = rows.map((r) => [
    r.fault,
    String(r.ok),
    Object.entries(r.failed)
      .sort((a, b) => b[1] - a[1])
      .map(([code, n]) => `${code}×${n}`)
      .join(' ') || '-',
    String(r.slowestMillis),
    r.recoveryMillis === undefined ? 'never' : String(Math.round(r.recoveryMillis)),
    r.agentRecoveryMillis === undefined ? 'never' : String(Math.round(r.agentRecoveryMillis)),
    String(r.agentUnreachable),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ');
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)];
  console.log(out.join('\n'));
}
