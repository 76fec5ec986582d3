/**
 * @pgwarden/pool's Pool: node-postgres's pg.Pool, same constructor, methods, events and counters,
 * that cannot run dry silently. It adds overflow sizing, one acquire deadline whose error names who
 * holds the connections, bounded waiting, max lifetime with jitter, validation of long-idle
 * connections, leak detection, retry and a circuit breaker for connecting, live resize, pipelined
 * sharing for `pool.query()`, metrics and `inspect()`.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Clock, TimerHandle } from './clock.js';
import { Connector, isNativeConnected, safeEnd } from './connector.js';
import {
  AcquireTimeoutError,
  type HolderInfo,
  type PoolDiagnosis,
  PoolEndedError,
  QueueFullError,
} from './errors.js';
import { instrumentClient, rawQuery } from './instrument.js';
import {
  type ClientConstructor,
  type PoolOptions,
  type ResolvedSettings,
  clientOptionsFrom,
  resolveSettings,
} from './options.js';
import { type QueryCallback, runPoolQuery } from './query.js';
import { type SiteHolder, SiteSampler, captureSite, formatSite } from './site.js';
import { type PooledClient, Slot } from './slot.js';
import { type CloseReason, PoolStats } from './stats.js';
import { WaiterQueue, type Waiting } from './waiters.js';
import { truncate } from './text.js';
import { withCode } from './transient.js';
import { type PoolInspection, inspectPool } from './inspect.js';
import { registerPoolMetrics } from './metrics.js';
import { Registry } from 'prom-client';

/** Where pools register their metrics when metrics are on and no registry was given. */
export const defaultRegistry = new Registry();

/** pg's query config, plus `idempotent` (retry after a lost connection). */
// biome-ignore lint/suspicious/noExplicitAny: matches pg.QueryConfig's own default
export type PoolQueryConfig = pg.QueryConfig<any[]> & { idempotent?: boolean };

export type ReleaseFunction = (err?: Error | boolean) => void;
export type ConnectCallback = (
  err: Error | undefined,
  client: PooledClient | undefined,
  release: ReleaseFunction,
) => void;

type Deliver = (err: Error | undefined, slot: Slot | undefined) => void;

/** A caller in line: a promise's resolve/reject (the common case, no extra closure) or a callback. */
class Waiter implements Waiting {
  settled = false;
  timer: TimerHandle | undefined = undefined;
  resolve: ((client: PooledClient) => void) | undefined = undefined;
  reject: ((err: Error) => void) | undefined = undefined;
  constructor(
    readonly enqueuedAt: number,
    readonly site: SiteHolder | undefined,
    /** The caller wants a connection for a pipelined `pool.query()`: a shared slot will do. */
    readonly shared: boolean,
    readonly callback: Deliver | undefined,
  ) {}

  deliver(err: Error | undefined, slot: Slot | undefined): void {
    if (this.callback) this.callback(err, slot);
    else if (err) (this.reject as (err: Error) => void)(err);
    else (this.resolve as (client: PooledClient) => void)((slot as Slot).client);
  }
}

const NOOP = () => {};
/** Node's timers have millisecond resolution; the clock is finer. */
const TIMER_SLACK_MILLIS = 1;
const DOUBLE_RELEASE = 'Release called on client which has already been released to the pool.';

/** Information about a checkout held past `leakDetectionThresholdMillis`. */
export interface LeakInfo {
  pool: string;
  pid: number | undefined;
  site: string | undefined;
  heldMillis: number;
  lastQuery: string | undefined;
}

export class Pool extends EventEmitter {
  /** The options every Client is constructed with (pg-pool keeps these on `pool.options`). */
  readonly options: Record<string, unknown>;
  readonly Client: ClientConstructor;
  readonly Promise: PromiseConstructor;
  log: (...messages: unknown[]) => void;
  /** Every client the pool owns, connecting ones included (pg-pool's `_clients`). */
  _clients: PooledClient[] = [];
  ending = false;
  ended = false;

  /** @internal */ readonly _settings: ResolvedSettings;
  /** @internal */ readonly _stats = new PoolStats();
  /** @internal */ readonly _slots = new Map<PooledClient, Slot>();
  /** @internal */ readonly _idle: Slot[] = [];
  /** @internal */ readonly _shared: Slot[] = [];
  /** @internal */ readonly _waiters = new WaiterQueue<Waiter>();
  /** @internal */ readonly _clock: Clock;
  /** @internal */ _connecting = 0;
  /** @internal */ _busy = 0;
  /** Connections whose `end()` has not called back yet. */
  private _closing = 0;
  private _validating = 0;
  /** @internal */ readonly _sampler: SiteSampler;
  private readonly _connector: Connector;
  private _reaperTimer: TimerHandle | undefined;
  private _leakTimer: TimerHandle | undefined;
  private _housekeeper: TimerHandle | undefined;
  private _endCallbacks: ((err?: Error) => void)[] = [];
  private _unregisterMetrics: (() => void) | undefined;

  constructor(options?: PoolOptions | null, Client?: ClientConstructor) {
    super();
    const given: PoolOptions = options ?? {};
    this._settings = resolveSettings(given);
    this.options = clientOptionsFrom(given, this._settings);
    this.log = typeof given.log === 'function' ? given.log : NOOP;
    this.Client = given.Client ?? Client ?? (pg.Client as unknown as ClientConstructor);
    this.Promise = given.Promise ?? globalThis.Promise;
    this._clock = this._settings.clock;
    this._sampler = new SiteSampler(this._settings.captureSites);
    this._connector = new Connector(
      this._settings,
      () => new this.Client(this.options),
      this._clock,
      this.log,
    );
    // Anything that can throw comes first: a constructor that throws must leave nothing running.
    const metrics = this._settings.metrics;
    if (metrics) {
      this._unregisterMetrics = registerPoolMetrics(
        this,
        metrics.registry ?? defaultRegistry,
        metrics.environment,
      );
    }
    if (this._settings.min > 0) process.nextTick(() => this._fillToMin());
    this._scheduleHousekeeping();
  }

  /** Everything about the pool now, JSON-serialisable: settings, counts, waiters, checkouts and their sites. */
  inspect(): PoolInspection {
    return inspectPool(this);
  }

  // ---- pg.Pool's counters -------------------------------------------------------------------

  get totalCount(): number {
    return this._clients.length;
  }

  get idleCount(): number {
    return this._idle.length;
  }

  /** Callers waiting for a connection beyond those a connection being made will serve (pg-pool's meaning). */
  get waitingCount(): number {
    return Math.max(0, this._waiters.length - this._connecting - this._validating);
  }

  /** Busy connections past their max lifetime, to be retired when returned. */
  get expiredCount(): number {
    let n = 0;
    for (const slot of this._slots.values()) if (slot.expired) n++;
    return n;
  }

  /** Connections handed out (checked out or running pipelined statements). */
  get activeCount(): number {
    return this._busy;
  }

  get name(): string {
    return this._settings.name;
  }

  // ---- acquire ------------------------------------------------------------------------------

  connect(): Promise<PooledClient>;
  connect(callback: ConnectCallback): void;
  connect(callback?: ConnectCallback): Promise<PooledClient> | undefined {
    const now = this._clock.now();
    const site = this._sampler.shouldCapture(now) ? captureSite(this.connect) : undefined;
    if (callback) {
      this._acquire(now, site, false, (err, slot) => {
        const client = slot?.client;
        callback(err, client, client ? client.release : NOOP);
      });
      return undefined;
    }
    // Fast path: an idle connection and nobody ahead in line.
    if (this._waiters.length === 0 && !this.ending) {
      const slot = this._idle[this._idle.length - 1];
      if (slot !== undefined && !this._needsValidation(slot, now)) {
        this._idle.pop();
        this._checkout(slot, site, now);
        this._stats.waitTime.observe(0);
        return this.Promise.resolve(slot.client);
      }
    }
    if (this.ending) return this.Promise.reject(new PoolEndedError());
    const waiter = new Waiter(now, site, false, undefined);
    const promise = new this.Promise<PooledClient>((resolve, reject) => {
      waiter.resolve = resolve;
      waiter.reject = reject;
    });
    this._enqueue(waiter);
    return promise;
  }

  /**
   * @internal Gets a connection for `deliver`, which is never called synchronously. `shared` asks
   * for a connection that pipelined `pool.query()` statements may share.
   */
  _acquire(now: number, site: SiteHolder | undefined, shared: boolean, deliver: Deliver): void {
    if (this.ending) {
      process.nextTick(deliver, new PoolEndedError(), undefined);
      return;
    }
    if (this._waiters.length === 0) {
      const slot = this._idle[this._idle.length - 1];
      if (slot !== undefined && !this._needsValidation(slot, now)) {
        this._idle.pop();
        this._checkout(slot, site, now, shared);
        this._stats.waitTime.observe(0);
        process.nextTick(deliver, undefined, slot);
        return;
      }
    }
    this._enqueue(new Waiter(now, site, shared, deliver));
  }

  /** Puts a caller in line (or refuses it past `maxWaiting`) and starts what it needs. */
  private _enqueue(waiter: Waiter): void {
    const maxWaiting = this._settings.maxWaiting;
    // Shed only a caller that would really wait: nothing idle and no room to open a connection.
    const wouldWait =
      this._idle.length === 0 && this._clients.length >= this._settings.max + this._settings.maxOverflow;
    if (maxWaiting !== Number.POSITIVE_INFINITY && wouldWait && this.waitingCount >= maxWaiting) {
      this._stats.queueFull++;
      const err = new QueueFullError(maxWaiting, this.diagnose());
      process.nextTick(() => waiter.deliver(err, undefined));
      return;
    }
    this._waiters.push(waiter);
    const timeout = this._settings.connectionTimeoutMillis;
    if (timeout > 0) {
      waiter.timer = this._clock.setTimeout(() => this._expireWaiter(waiter), timeout);
      waiter.timer.unref?.();
    }
    // At saturation (nothing idle, no room to grow) there is nothing to start: skip the pulse.
    if (this._idle.length > 0 || this._clients.length < this._settings.max + this._settings.maxOverflow) {
      this._pulse();
    }
  }

  private _expireWaiter(waiter: Waiter): void {
    if (waiter.settled) return;
    const timeout = this._settings.connectionTimeoutMillis;
    if (this._clock.now() - waiter.enqueuedAt < 2 * timeout && this._nativeConnectNearlyDone()) {
      // pg-pool's exemption for pg-native clients that are connected but not yet called back.
      waiter.timer = this._clock.setTimeout(() => this._expireWaiter(waiter), Math.max(1, timeout / 10));
      waiter.timer.unref?.();
      return;
    }
    waiter.settled = true;
    this._waiters.forget(waiter);
    const now = this._clock.now();
    this._stats.timeouts++;
    this._sampler.alert(now);
    const error = new AcquireTimeoutError(this._settings.connectionTimeoutMillis, this.diagnose());
    this._stats.countError(error, now);
    this.log('timeout exceeded when trying to connect', error.diagnosis);
    waiter.deliver(error, undefined);
    this._pulse();
  }

  /** Hands idle connections to waiters, then starts the connections the rest still need. */
  private _pulse(): void {
    if (this.ended) return;
    while (this._waiters.length > this._validating && this._idle.length > 0) {
      const slot = this._idle.pop() as Slot;
      const now = this._clock.now();
      if (this._needsValidation(slot, now)) {
        this._validate(slot);
        continue;
      }
      this._deliver(this._waiters.shift() as Waiter, slot, now);
    }
    if (this.ending) return;
    const capacity = this._settings.max + this._settings.maxOverflow;
    // While connections are busy they will come back soon: grow a few at a time (HikariCP's
    // lesson: a spike must not open one connection per caller). With none busy, open them all.
    const limit = this._busy > 0 ? this._settings.maxConnecting : Number.POSITIVE_INFINITY;
    let need = this._waiters.length - this._connecting - this._validating;
    while (need > 0 && this._clients.length < capacity && this._connecting < limit) {
      this._createConnection();
      need--;
    }
  }

  private _deliver(waiter: Waiter, slot: Slot, now: number): void {
    waiter.settled = true;
    if (waiter.timer !== undefined) this._clock.clearTimeout(waiter.timer);
    this._stats.waitTime.observe((now - waiter.enqueuedAt) / 1000);
    this._checkout(slot, waiter.site, now, waiter.shared);
    waiter.deliver(undefined, slot);
    if (waiter.shared) this._fillShared(slot, now);
  }

  /** Pipelined statements at the head of the line ride a shared connection that has room. */
  private _fillShared(slot: Slot, now: number): void {
    const maxPipeline = this._settings.maxPipeline;
    for (
      let head = this._waiters.peek();
      head?.shared && slot.state === 'shared' && slot.inFlight < maxPipeline && slot.usable;
      head = this._waiters.peek()
    ) {
      this._waiters.shift();
      head.settled = true;
      this._clock.clearTimeout(head.timer);
      this._stats.waitTime.observe((now - head.enqueuedAt) / 1000);
      slot.inFlight++;
      head.deliver(undefined, slot);
    }
  }

  /**
   * @internal A shared connection with room for one more pipelined statement, or undefined. Only
   * when the pool is at its limit with nothing idle and nobody in line (so connect() callers are
   * never starved by a stream of pipelined statements).
   */
  _pickShared(): Slot | undefined {
    if (this._idle.length > 0 || this._waiters.length > 0) return undefined;
    if (this._clients.length < this._settings.max + this._settings.maxOverflow) return undefined;
    let best: Slot | undefined;
    for (const slot of this._shared) {
      if (slot.inFlight >= this._settings.maxPipeline || !slot.usable) continue;
      const tx = slot.client.getTransactionStatus?.();
      if (tx !== undefined && tx !== null && tx !== 'I') continue;
      if (best === undefined || slot.inFlight < best.inFlight) best = slot;
    }
    if (best) best.inFlight++;
    return best;
  }

  /** @internal A pipelined statement finished on a shared connection. */
  _sharedStatementDone(slot: Slot): void {
    if (slot.state !== 'shared') return;
    slot.inFlight--;
    this._fillShared(slot, this._clock.now());
    if (slot.inFlight === 0) this._release(slot, slot.generation);
  }

  private _checkout(slot: Slot, site: SiteHolder | undefined, now: number, shared = false): void {
    slot.moveTo(shared ? 'shared' : 'busy');
    if (shared) {
      // Reserved for the caller it is handed to, so it cannot be released before that statement runs.
      slot.inFlight = 1;
      this._shared.push(slot);
    }
    this._busy++;
    slot.checkoutAt = now;
    slot.site = site;
    slot.leakReported = false;
    const generation = ++slot.generation;
    const client = slot.client;
    if (!shared) client.release = (err?: Error | boolean) => this._release(slot, generation, err);
    this._stats.acquired++;
    if (this._settings.allowExitOnIdle) client.ref?.();
    if (this._settings.leakDetectionThresholdMillis > 0 && this._leakTimer === undefined) {
      this._armLeakTimer(this._settings.leakDetectionThresholdMillis);
    }
    this._emitSafely('acquire', client);
  }

  // ---- release ------------------------------------------------------------------------------

  /** @internal */
  _release(slot: Slot, generation: number, err?: Error | boolean): void {
    // The pool already took this checkout's slot back (its connection died while leaked).
    if (slot.reclaimedGeneration === generation) return;
    if (slot.generation !== generation || (slot.state !== 'busy' && slot.state !== 'shared')) {
      throw new Error(DOUBLE_RELEASE);
    }
    slot.generation++;
    slot.uses++;
    this._busy--;
    if (slot.state === 'shared') this._shared.splice(this._shared.indexOf(slot), 1);
    const now = this._clock.now();
    if (slot.leakReported) this._reportLeakReturned(slot, now);
    slot.site = undefined;
    const error = err instanceof Error ? err : err ? new Error('released with error') : undefined;
    this._emitSafely('release', error, slot.client);
    const reason = this._retireReason(slot, error, now);
    if (reason) {
      if (reason === 'max_uses') this.log('remove expended client');
      if (reason === 'lifetime') this.log('remove expired client');
      slot.state = 'idle';
      this._remove(slot, reason);
      this._pulse();
      return;
    }
    slot.moveTo('idle');
    this._makeAvailable(slot, now);
  }

  private _retireReason(slot: Slot, error: Error | undefined, now: number): CloseReason | undefined {
    if (error) return 'released_with_error';
    if (this.ending) return 'pool_ended';
    if (!slot.usable) return 'broken';
    if (this._clients.length > this._settings.max + this._settings.maxOverflow) return 'resize';
    if (slot.uses >= this._settings.maxUses) return 'max_uses';
    if (slot.expired || now >= slot.retireAt) return 'lifetime';
    return undefined;
  }

  /** A connection is free (new, returned or validated): first waiter, else idle or closed if overflow. */
  private _makeAvailable(slot: Slot, now: number): void {
    if (slot.expired || now >= slot.retireAt) {
      // Its lifetime ended while it was away (being made, validated or used): retire it.
      this._remove(slot, 'lifetime');
      this._pulse();
      return;
    }
    const waiter = this._waiters.shift();
    if (waiter) {
      this._deliver(waiter, slot, now);
      return;
    }
    if (this.ending) {
      this._remove(slot, 'pool_ended');
      return;
    }
    if (this._clients.length > this._settings.max) {
      this._remove(slot, 'overflow');
      return;
    }
    slot.idleSince = now;
    this._idle.push(slot);
    if (this._settings.allowExitOnIdle) slot.client.unref?.();
    if (this._reaperTimer === undefined) this._armReaper();
  }

  // ---- connections --------------------------------------------------------------------------

  private _createConnection(): void {
    const now = this._clock.now();
    this._connecting++;
    let slot: Slot | undefined;
    // Attempts end by their own deadline; `end()` lets them finish, as pg-pool does.
    this._connector
      .connect((client) => {
        if (slot === undefined) {
          slot = new Slot(client, now);
          this._clients.push(client);
        } else {
          this._clients[this._clients.indexOf(slot.client)] = client;
          this._slots.delete(slot.client);
          slot.client = client;
        }
        this._slots.set(client, slot);
        const owner = slot;
        client.on('error', (err: Error) => this._onClientError(owner, client, err));
      })
      .then(
        () =>
          this._onConnected(slot as Slot).catch((err: unknown) => {
            this.log('internal error after connecting', err);
            if (slot) this._remove(slot, 'broken');
          }),
        (err: Error) => this._onConnectFailed(slot, err),
      );
  }

  private async _onConnected(slot: Slot): Promise<void> {
    const client = slot.client;
    try {
      instrumentClient(slot, client, this._stats, this._clock);
      const hook = this._connectHook();
      if (hook) await hook(client);
    } catch (err) {
      this._connecting--;
      this._stats.connectFailures++;
      this._stats.countError(err, this._clock.now());
      this.log('client failed its connect hook', err);
      this._forgetClient(slot);
      this._closing++;
      safeEnd(client, () => {
        this._closing--;
        this._afterConnectFailure(err as Error);
      });
      return;
    }
    this._connecting--;
    this._stats.created++;
    const now = this._clock.now();
    this._startLifetime(slot, now);
    this.log('new client connected');
    if (this.ending && this._waiters.length === 0) {
      slot.state = 'idle';
      this._remove(slot, 'pool_ended');
      return;
    }
    slot.moveTo('idle');
    this._emitSafely('connect', client);
    this._makeAvailable(slot, now);
    this._pulse();
  }

  /** onConnect, session settings and pg's verify, in that order, as one async step (or none). */
  private _connectHook(): ((client: PooledClient) => Promise<void>) | undefined {
    const options = this.options as PoolOptions;
    const onConnect = options.onConnect;
    const verify = options.verify;
    const settings =
      this._settings.sessionSettingsVia === 'query' ? Object.entries(this._settings.sessionSettings) : [];
    if (!onConnect && !verify && settings.length === 0) return undefined;
    return async (client) => {
      if (onConnect) await onConnect(client);
      for (const [key, value] of settings) {
        await rawQuery(client).call(client, 'SELECT set_config($1, $2, false)', [key, value]);
      }
      if (verify) {
        await new Promise<void>((resolve, reject) =>
          verify(client, (err?: Error) => (err ? reject(err) : resolve())),
        );
      }
    };
  }

  private _onConnectFailed(slot: Slot | undefined, err: Error): void {
    withCode(err);
    this._connecting--;
    this._stats.connectFailures++;
    this._stats.countError(err, this._clock.now());
    this.log('client failed to connect', err);
    if (slot) this._forgetClient(slot);
    this._afterConnectFailure(err);
  }

  /** A connection that was being made for the line failed: the oldest waiter gets the error. */
  private _afterConnectFailure(err: Error): void {
    withCode(err);
    const waiter = this._waiters.shift();
    if (waiter) {
      waiter.settled = true;
      this._clock.clearTimeout(waiter.timer);
      waiter.deliver(err, undefined);
    }
    this._pulse();
    this._checkEnded();
  }

  /** Drops a client that never became usable; it gets no `remove` event (pg-pool's behaviour). */
  private _forgetClient(slot: Slot): void {
    slot.state = 'closed';
    const index = this._clients.indexOf(slot.client);
    if (index !== -1) this._clients.splice(index, 1);
    this._slots.delete(slot.client);
  }

  private _startLifetime(slot: Slot, now: number): void {
    const seconds = this._settings.maxLifetimeSeconds;
    if (seconds <= 0) return;
    const lifetime = seconds * 1000 * (1 - this._settings.lifetimeJitter * Math.random());
    slot.retireAt = now + lifetime;
    slot.lifetimeTimer = this._clock.setTimeout(() => {
      if (slot.state === 'closed') return;
      this.log('ending client due to expired lifetime');
      if (slot.state === 'idle') {
        this._remove(slot, 'lifetime');
        this._pulse();
      } else {
        slot.expired = true;
      }
    }, lifetime);
    slot.lifetimeTimer.unref?.();
  }

  private _onClientError(slot: Slot, client: PooledClient, err: Error): void {
    if (slot.client !== client || slot.state === 'closed' || slot.state === 'connecting') {
      if (slot.state === 'closed') this.log('additional client error after disconnection due to error', err);
      return;
    }
    this._stats.countError(withCode(err), this._clock.now());
    if (slot.state === 'busy' && slot.leakReported) {
      // A leaked connection whose server session ended (an operator or pgwarden terminated it):
      // nobody will return it, and it can never run a statement again, so its slot is freed now.
      this._reclaimLeaked(slot, err);
      return;
    }
    if (slot.state === 'busy' || slot.state === 'shared') {
      // The holder sees the error through its own query; the pool drops the connection on return.
      slot.broken = true;
      return;
    }
    (err as Error & { client?: PooledClient }).client = client;
    this._remove(slot, 'error');
    if (this.listenerCount('error') > 0) this._emitSafely('error', err, client);
    else this.log('idle client error (no pool error listener)', err);
    this._pulse();
  }

  /**
   * Frees the slot of a leaked checkout whose connection died. The holder keeps a dead client: its
   * statements fail, and its eventual `release()` does nothing.
   */
  private _reclaimLeaked(slot: Slot, err: Error): void {
    const now = this._clock.now();
    const info: LeakInfo = { pool: this.name, ...this._holder(slot, now) };
    slot.reclaimedGeneration = slot.generation;
    slot.generation++;
    slot.broken = true;
    slot.site = undefined;
    this._busy--;
    this._stats.leaksReclaimed++;
    // Listeners that pair `acquire` with `release` see this checkout end, with the error.
    this._emitSafely('release', err, slot.client);
    const message = `pgwarden pool "${this.name}": leaked connection${
      info.pid === undefined ? '' : ` pid ${info.pid}`
    } reclaimed after ${info.heldMillis}ms, its server connection ended (${err.message}); it was taken by ${info.site ?? 'an unknown site'}`;
    this.log(message);
    if (this.listenerCount('leakReclaimed') > 0) this._emitSafely('leakReclaimed', info);
    else process.emitWarning(message, { code: 'PGWARDEN_LEAK_RECLAIMED' });
    this._remove(slot, 'leak_reclaimed');
    this._pulse();
  }

  /** @internal Closes a connection that is not handed out; `remove` is emitted once it has ended. */
  _remove(slot: Slot, reason: CloseReason): void {
    if (slot.state === 'closed') return;
    if (slot.state === 'idle') {
      const index = this._idle.indexOf(slot);
      if (index !== -1) this._idle.splice(index, 1);
    }
    slot.state = 'closed';
    this._clock.clearTimeout(slot.lifetimeTimer);
    const client = slot.client;
    const index = this._clients.indexOf(client);
    if (index !== -1) this._clients.splice(index, 1);
    this._slots.delete(client);
    this._stats.countClose(reason);
    this._closing++;
    safeEnd(client, () => {
      this._closing--;
      this._emitSafely('remove', client);
      this._checkEnded();
    });
    this._checkEnded();
  }

  // ---- validation, reaping, leaks -----------------------------------------------------------

  private _needsValidation(slot: Slot, now: number): boolean {
    const after = this._settings.validateAfterIdleMillis;
    return after > 0 && now - slot.idleSince > after;
  }

  /** Checks a long-idle connection with `SELECT 1` before handing it out; a broken one is replaced. */
  private _validate(slot: Slot): void {
    slot.moveTo('validating');
    this._validating++;
    const client = slot.client;
    let done = false;
    const finish = (err: unknown) => {
      if (done) return;
      done = true;
      this._clock.clearTimeout(timer);
      this._validating--;
      if (slot.state === 'closed') {
        this._pulse();
        return;
      }
      if (err || !slot.usable) {
        this.log('idle client failed validation', err);
        slot.state = 'idle';
        this._remove(slot, 'validation_failed');
        this._pulse();
        return;
      }
      slot.moveTo('idle');
      this._makeAvailable(slot, this._clock.now());
    };
    const timer = this._clock.setTimeout(
      () => finish(new Error('validation timed out')),
      this._settings.validationTimeoutMillis,
    );
    timer.unref?.();
    try {
      const result = rawQuery(client).call(client, 'SELECT 1') as Promise<unknown>;
      result.then(() => finish(undefined), finish);
    } catch (err) {
      finish(err);
    }
  }

  /** One timer for the whole idle list: it fires when the oldest idle connection times out. */
  private _armReaper(): void {
    const timeout = this._settings.idleTimeoutMillis;
    const oldest = this._idle[0];
    if (!timeout || oldest === undefined || this._clients.length <= this._settings.min) return;
    const delay = Math.max(0, oldest.idleSince + timeout - this._clock.now());
    this._reaperTimer = this._clock.setTimeout(() => this._reap(), delay);
    if (this._settings.allowExitOnIdle) this._reaperTimer.unref?.();
  }

  private _reap(): void {
    this._reaperTimer = undefined;
    const now = this._clock.now();
    const timeout = this._settings.idleTimeoutMillis;
    while (this._clients.length > this._settings.min) {
      const oldest = this._idle[0];
      // Timers fire on whole milliseconds: allow that much slack so a due connection is not put off.
      if (oldest === undefined || now - oldest.idleSince < timeout - TIMER_SLACK_MILLIS) break;
      this.log('remove idle client');
      this._remove(oldest, 'idle_timeout');
    }
    this._armReaper();
  }

  private _armLeakTimer(delay: number): void {
    this._leakTimer = this._clock.setTimeout(() => this._sweepLeaks(), delay);
    this._leakTimer.unref?.();
  }

  private _sweepLeaks(): void {
    this._leakTimer = undefined;
    const threshold = this._settings.leakDetectionThresholdMillis;
    const now = this._clock.now();
    let nextDue = Number.POSITIVE_INFINITY;
    for (const slot of this._slots.values()) {
      // A shared (pipelined) connection runs many short statements: holding it is not a leak.
      if (slot.state !== 'busy' || slot.leakReported) continue;
      const due = slot.checkoutAt + threshold;
      if (due <= now + TIMER_SLACK_MILLIS) this._reportLeak(slot, now);
      else if (due < nextDue) nextDue = due;
    }
    if (nextDue !== Number.POSITIVE_INFINITY) this._armLeakTimer(nextDue - now);
  }

  /**
   * Emits an event without letting a throwing listener corrupt the pool's books: the listener's
   * error is reported as a process warning and the pool carries on.
   */
  private _emitSafely(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (err) {
      this.log(`a "${event}" listener threw`, err);
      const message = err instanceof Error ? err.message : String(err);
      process.emitWarning(`pgwarden pool "${this.name}": a "${event}" listener threw: ${message}`, {
        code: 'PGWARDEN_LISTENER_ERROR',
      });
    }
  }

  private _holder(slot: Slot, now: number): HolderInfo {
    return {
      pid: slot.pid,
      site: formatSite(slot.site),
      heldMillis: Math.round(now - slot.checkoutAt),
      lastQuery: slot.lastQuery === undefined ? undefined : truncate(slot.lastQuery, 200),
    };
  }

  private _reportLeak(slot: Slot, now: number): void {
    slot.leakReported = true;
    this._stats.leaks++;
    this._sampler.alert(now);
    const info: LeakInfo = { pool: this.name, ...this._holder(slot, now) };
    const message = `pgwarden pool "${this.name}": connection leak suspected: ${
      info.pid === undefined ? 'a connection' : `pid ${info.pid}`
    } checked out ${Math.round(info.heldMillis)}ms ago by ${info.site ?? 'an unknown site (enable captureSites: "always" to record every site)'}`;
    this.log(message);
    if (this.listenerCount('leak') > 0) this._emitSafely('leak', info);
    else process.emitWarning(message, { code: 'PGWARDEN_LEAK' });
  }

  private _reportLeakReturned(slot: Slot, now: number): void {
    const info: LeakInfo = { pool: this.name, ...this._holder(slot, now) };
    const message = `pgwarden pool "${this.name}": leaked connection${
      info.pid === undefined ? '' : ` pid ${info.pid}`
    } returned after ${Math.round(info.heldMillis)}ms (taken by ${info.site ?? 'an unknown site'})`;
    this.log(message);
    if (this.listenerCount('leakReturned') > 0) this._emitSafely('leakReturned', info);
    else process.emitWarning(message, { code: 'PGWARDEN_LEAK_RETURNED' });
  }

  private _scheduleHousekeeping(): void {
    this._housekeeper = this._clock.setTimeout(() => {
      this._fillToMin();
      this._scheduleHousekeeping();
    }, this._settings.housekeepingIntervalMillis);
    this._housekeeper.unref?.();
  }

  /** Keeps `min` connections open (HikariCP's minimumIdle): made at start and by the housekeeper. */
  private _fillToMin(): void {
    if (this.ending) return;
    let missing = this._settings.min - this._clients.length;
    while (missing-- > 0) this._createConnection();
  }

  // ---- diagnosis ----------------------------------------------------------------------------

  /** The pool's state now, with the connections held longest first: what the timeout error carries. */
  diagnose(limit = 5): PoolDiagnosis {
    const now = this._clock.now();
    const holders: HolderInfo[] = [];
    for (const slot of this._slots.values()) {
      if (slot.state === 'busy' || slot.state === 'shared') holders.push(this._holder(slot, now));
    }
    holders.sort((a, b) => b.heldMillis - a.heldMillis);
    return {
      pool: this.name,
      total: this._clients.length,
      active: this._busy,
      idle: this._idle.length,
      waiting: this._waiters.length,
      connecting: this._connecting,
      max: this._settings.max,
      maxOverflow: this._settings.maxOverflow,
      holders: holders.slice(0, limit),
    };
  }

  private _nativeConnectNearlyDone(): boolean {
    if (this._connecting === 0) return false;
    for (const slot of this._slots.values()) {
      if (slot.state === 'connecting' && isNativeConnected(slot.client)) return true;
    }
    return false;
  }

  /** @internal Ages and sites of callers in line, oldest first. */
  _waitersInfo(now: number): { waitedMillis: number; site: string | undefined }[] {
    const out = [];
    for (const waiter of this._waiters)
      out.push({ waitedMillis: Math.round(now - waiter.enqueuedAt), site: formatSite(waiter.site) });
    return out;
  }

  /** @internal */
  get _breakerState() {
    return this._connector.breakerState;
  }

  // ---- query --------------------------------------------------------------------------------

  /**
   * Runs one statement on a pooled connection (pg.Pool's semantics). Mark a statement that is safe to
   * run twice with `{ text, values, idempotent: true }` and it is retried after a lost connection.
   */
  // biome-ignore lint/suspicious/noExplicitAny: pg's own row type default
  query<R extends pg.QueryResultRow = any>(
    text: string | PoolQueryConfig,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
  // biome-ignore lint/suspicious/noExplicitAny: pg's own row type default
  query<R extends pg.QueryResultRow = any>(
    text: string | PoolQueryConfig,
    values: unknown[] | undefined,
    callback: (err: Error | undefined, res: pg.QueryResult<R> | undefined) => void,
  ): void;
  // biome-ignore lint/suspicious/noExplicitAny: pg's own row type default
  query<R extends pg.QueryResultRow = any>(
    text: string | PoolQueryConfig,
    callback: (err: Error | undefined, res: pg.QueryResult<R> | undefined) => void,
  ): void;
  query(text: unknown, values?: unknown, callback?: QueryCallback): Promise<pg.QueryResult> | undefined {
    return runPoolQuery(this, text, values, callback, this.query);
  }

  // ---- resize and end -----------------------------------------------------------------------

  /**
   * Changes the pool's size at run time. Nothing in flight is lost: connections above the new size
   * are closed when idle, and busy ones when they are returned.
   */
  resize(size: { min?: number; max?: number; maxOverflow?: number }): void {
    if (size.max !== undefined && !(Number.isInteger(size.max) && size.max >= 1)) {
      throw new RangeError(`max must be an integer >= 1, got ${String(size.max)}`);
    }
    const next = resolveSettings({
      max: size.max ?? this._settings.max,
      min: size.min ?? this._settings.min,
      maxOverflow: size.maxOverflow ?? this._settings.maxOverflow,
      env: {},
    });
    this._settings.max = next.max;
    this._settings.min = next.min;
    this._settings.maxOverflow = next.maxOverflow;
    this.options.max = next.max;
    this.options.min = next.min;
    this.log(`resized to min=${next.min} max=${next.max} maxOverflow=${next.maxOverflow}`);
    while (this._clients.length > next.max && this._idle.length > 0) {
      this._remove(this._idle[0] as Slot, 'resize');
    }
    this._fillToMin();
    this._pulse();
    // A lower min may leave idle connections above it: let the reaper look at them again.
    if (this._reaperTimer === undefined) this._armReaper();
  }

  end(): Promise<void>;
  end(callback: (err?: Error) => void): void;
  end(callback?: (err?: Error) => void): Promise<void> | undefined {
    this.log('ending');
    if (this.ending) {
      const err = new PoolEndedError('Called end on pool more than once');
      if (callback) {
        process.nextTick(callback, err);
        return undefined;
      }
      return this.Promise.reject(err);
    }
    this.ending = true;
    this._clock.clearTimeout(this._housekeeper);
    this._clock.clearTimeout(this._reaperTimer);
    this._clock.clearTimeout(this._leakTimer);
    const result = callback
      ? undefined
      : new this.Promise<void>((resolve, reject) => {
          this._endCallbacks.push((err) => (err ? reject(err) : resolve()));
        });
    if (callback) this._endCallbacks.push(callback);
    for (const slot of this._idle.slice()) this._remove(slot, 'pool_ended');
    this._checkEnded();
    return result;
  }

  private _checkEnded(): void {
    if (!this.ending || this.ended) return;
    if (this._connecting === 0 && this._validating === 0) {
      // Nothing is coming for the callers still in line: they would wait forever.
      for (let waiter = this._waiters.shift(); waiter; waiter = this._waiters.shift()) {
        waiter.settled = true;
        this._clock.clearTimeout(waiter.timer);
        waiter.deliver(new PoolEndedError(), undefined);
      }
    }
    // end() resolves once every connection has closed, so a process can exit right after it.
    if (this._clients.length > 0 || this._closing > 0) return;
    this.ended = true;
    this._unregisterMetrics?.();
    const callbacks = this._endCallbacks;
    this._endCallbacks = [];
    process.nextTick(() => {
      for (const cb of callbacks) cb();
    });
  }
}
