/**
 * One pooled connection and its life: connecting -> idle <-> busy (or shared, for pipelined
 * `pool.query()`), -> validating -> idle | closed. Every change of state goes through `moveTo()`, so
 * the pool's books (who is idle, who is busy) cannot drift from the connections' own view.
 */
import type { TimerHandle } from './clock.js';
import type { SiteHolder } from './site.js';

export type SlotState = 'connecting' | 'idle' | 'busy' | 'shared' | 'validating' | 'closed';

// biome-ignore lint/suspicious/noExplicitAny: the pooled client is whatever the Client constructor makes
export type PooledClient = any;

/**
 * Whether a connection may move from one state to another. Written as comparisons of interned
 * strings (pointer compares) because it runs on every checkout and return.
 */
function isLegal(from: SlotState, next: SlotState): boolean {
  if (from === 'closed') return false;
  switch (next) {
    case 'busy':
    case 'shared':
    case 'closed':
      return true;
    case 'idle':
      return from !== 'idle';
    case 'validating':
      return from === 'idle';
    default:
      return false; // nothing goes back to 'connecting'
  }
}

export class Slot {
  state: SlotState = 'connecting';
  readonly createdAt: number;
  /** When this connection must retire (max lifetime with jitter); Infinity when unlimited. */
  retireAt = Infinity;
  lifetimeTimer: TimerHandle | undefined;
  /** Times it was handed out and returned (pg-pool's `_poolUseCount`). */
  uses = 0;
  idleSince = 0;
  /** Checkout bookkeeping, valid while busy. */
  checkoutAt = 0;
  /** Bumped on every checkout: a `release` function from an earlier checkout no longer matches. */
  generation = 0;
  /** The checkout whose slot was reclaimed after its connection died: its release does nothing. */
  reclaimedGeneration = -1;
  site: SiteHolder | undefined;
  leakReported = false;
  /** Statements in flight when shared by pipelined `pool.query()`. */
  inFlight = 0;
  /** The last statement's text (only a reference is kept; it is truncated when shown). */
  lastQuery: string | undefined;
  /** Set when the connection failed while checked out: it is dropped when returned. */
  broken = false;
  /** Past its max lifetime while busy: retired when returned. */
  expired = false;

  constructor(
    public client: PooledClient,
    now: number,
  ) {
    this.createdAt = now;
  }

  /** Backend process id (pg's `client.processID`), once connected. */
  get pid(): number | undefined {
    const pid = this.client?.processID;
    return typeof pid === 'number' ? pid : undefined;
  }

  moveTo(next: SlotState): void {
    if (!isLegal(this.state, next)) {
      throw new Error(`pgwarden pool: illegal connection state change ${this.state} -> ${next}`);
    }
    this.state = next;
  }

  /** Whether the client can still run statements (pg marks broken clients `_queryable = false`). */
  get usable(): boolean {
    const c = this.client;
    return !this.broken && c._queryable !== false && c._ending !== true;
  }
}
