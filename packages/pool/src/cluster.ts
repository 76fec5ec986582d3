/**
 * Primary/replica routing: writes go to the primary; reads go to healthy replicas in turn, skip a
 * replica that just failed, and fall back to the primary when none is left.
 */
import type pg from 'pg';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { PoolInspection } from './inspect.js';
import type { PoolOptions } from './options.js';
import { Pool, type PoolQueryConfig } from './pool.js';
import type { PooledClient } from './slot.js';
import { isAcquireTimeoutError, isPoolError, isQueueFullError } from './errors.js';
import { isConnectionLostError, isTransientConnectError } from './transient.js';

export interface ClusterOptions {
  primary: PoolOptions | Pool;
  replicas?: (PoolOptions | Pool)[];
  /** Name prefix of the pools made from options (default "default"). */
  name?: string;
  /** How long a replica that failed is skipped (default 5000 ms). */
  replicaCooldownMillis?: number;
  clock?: Clock;
}

interface Replica {
  pool: Pool;
  downUntil: number;
}

/** A failure of the server or the way to it, as opposed to an error in the statement. */
function isServerUnavailable(error: unknown): boolean {
  return isPoolError(error) || isTransientConnectError(error) || isConnectionLostError(error);
}

export class PoolCluster {
  readonly primary: Pool;
  private readonly replicas: Replica[];
  private next = 0;
  private readonly cooldown: number;
  private readonly clock: Clock;

  constructor(options: ClusterOptions) {
    const name = options.name ?? 'default';
    this.clock = options.clock ?? systemClock;
    this.cooldown = options.replicaCooldownMillis ?? 5000;
    this.primary = asPool(options.primary, `${name}-primary`);
    this.replicas = (options.replicas ?? []).map((r, i) => ({
      pool: asPool(r, `${name}-replica-${i + 1}`),
      downUntil: 0,
    }));
  }

  /** A statement that may write: always the primary. */
  query(text: string | PoolQueryConfig, values?: unknown[]): Promise<pg.QueryResult> {
    return this.primary.query(text, values);
  }

  /** A read-only statement: a healthy replica in turn, else the primary. */
  async read(text: string | PoolQueryConfig, values?: unknown[]): Promise<pg.QueryResult> {
    return this.onReadPool((pool) => pool.query(text, values));
  }

  /** A checked-out client: from a replica when `readOnly`, else from the primary. */
  async connect(options: { readOnly?: boolean } = {}): Promise<PooledClient> {
    if (!options.readOnly) return this.primary.connect();
    return this.onReadPool((pool) => pool.connect());
  }

  /** Replicas not in their cool-down, in round-robin order starting after the last one used. */
  healthyReplicas(): Pool[] {
    const now = this.clock.now();
    const out: Pool[] = [];
    const n = this.replicas.length;
    for (let i = 0; i < n; i++) {
      const replica = this.replicas[(this.next + i) % n] as Replica;
      if (replica.downUntil <= now && replica.pool._breakerState !== 'open') out.push(replica.pool);
    }
    return out;
  }

  private async onReadPool<T>(run: (pool: Pool) => Promise<T>): Promise<T> {
    const candidates = this.healthyReplicas();
    if (this.replicas.length > 0) this.next = (this.next + 1) % this.replicas.length;
    for (const pool of candidates) {
      try {
        return await run(pool);
      } catch (error) {
        if (!isServerUnavailable(error)) throw error;
        // A replica pool that is merely busy here (queue full, acquire timeout) is not down.
        if (!isQueueFullError(error) && !isAcquireTimeoutError(error)) this.markDown(pool, error);
      }
    }
    return run(this.primary);
  }

  private markDown(pool: Pool, error: unknown): void {
    const replica = this.replicas.find((r) => r.pool === pool);
    if (!replica) return;
    replica.downUntil = this.clock.now() + this.cooldown;
    pool.log(`replica ${pool.name} skipped for ${this.cooldown}ms after a failure`, error);
  }

  inspect(): { primary: PoolInspection; replicas: (PoolInspection & { healthy: boolean })[] } {
    const now = this.clock.now();
    return {
      primary: this.primary.inspect(),
      replicas: this.replicas.map((r) => ({
        ...r.pool.inspect(),
        healthy: r.downUntil <= now && r.pool._breakerState !== 'open',
      })),
    };
  }

  /** Every pool of the cluster, primary first. */
  pools(): Pool[] {
    return [this.primary, ...this.replicas.map((r) => r.pool)];
  }

  async end(): Promise<void> {
    await Promise.all(this.pools().map((p) => (p.ending ? undefined : p.end())));
  }
}

function asPool(source: PoolOptions | Pool, name: string): Pool {
  if (source instanceof Pool) return source;
  return new Pool({ name, ...source });
}

export function createCluster(options: ClusterOptions): PoolCluster {
  return new PoolCluster(options);
}
