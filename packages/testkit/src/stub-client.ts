/**
 * A stand-in for node-postgres's `Client` that talks to no server. It has the surface pg-pool (and
 * pg.Pool) uses, so `new pg.Pool({ Client: StubClient })` or `new PgPool(options, StubClient)` runs a
 * real pool against it, with knobs for slow, failing and hanging connections and queries.
 */
import { EventEmitter } from 'node:events';

/** Anything with setTimeout/clearTimeout, such as a `FakeClock`. */
export interface StubClock {
  setTimeout(callback: () => void, delayMillis: number): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: accepts whatever handle type the clock hands out
  clearTimeout(handle: any): void;
}

export interface StubQueryResult {
  rows: unknown[];
  rowCount: number | null;
  command: string;
  fields: unknown[];
  oid?: number | null;
}

/** Behaviour of every client of one stub class. The object is live: tests may change it at any time. */
export interface StubClientKnobs {
  /** Delay before `connect` completes; 0 (the default) completes on the next `setImmediate`. */
  connectDelayMs?: number;
  /** Delay before each query completes; 0 (the default) completes on the next `setImmediate`. */
  queryDelayMs?: number;
  /** Called with the 1-based connect attempt number (across the class); an error fails that attempt. */
  failConnect?: (attempt: number) => Error | undefined;
  /** When true at `connect()` time, the connect never completes until `end()` is called. */
  hangConnect?: boolean;
  /** Called with each query's text when it starts; an error fails that query. */
  failQuery?: (text: string) => Error | undefined;
  /** Optional answer for a query; default `{ rows: [], rowCount: 0, command: 'SELECT', fields: [] }`. */
  respond?: (text: string, values: unknown[] | undefined) => Partial<StubQueryResult> | undefined;
  /** Clock for the non-zero delays (e.g. a FakeClock); default Node's timers. */
  clock?: StubClock;
}

export interface StubClientStats {
  /** Clients constructed. */
  created: number;
  /** Successful connects. */
  connected: number;
  /** Clients on which `end()` was called (counted once each). */
  ended: number;
  /** Clients connected and not yet ended. */
  open: number;
  /** Highest `open` seen. */
  maxOpen: number;
  /** Queries dispatched (accepted by a connected, queryable client). */
  queries: number;
  /** `connect()` calls. */
  connectAttempts: number;
  /** Connects failed by `failConnect` or ended while pending. */
  connectFailures: number;
  /** Queries that completed with an error. */
  queryFailures: number;
}

type Callback<T> = (err: Error | undefined | null, value?: T) => void;

interface Submittable {
  submit: (...args: unknown[]) => unknown;
  text?: string;
  values?: unknown[];
  callback?: Callback<StubQueryResult>;
  emit?: (event: string, ...args: unknown[]) => unknown;
}

interface PendingQuery {
  text: string;
  values: unknown[] | undefined;
  done: (err: Error | undefined, result?: StubQueryResult) => void;
}

export interface StubClient extends EventEmitter {
  readonly options: unknown;
  /** True once connected, false again after an error or `end()`. */
  _queryable: boolean;
  _ending: boolean;
  _connected: boolean;
  _connecting: boolean;
  _ended: boolean;
  /** Unique, increasing per process (across stub classes); null until connected. */
  processID: number | null;
  readonly pipeline: boolean;
  /** Texts of the queries dispatched on this client, in order. */
  readonly queries: string[];
  /** Set by pools on checkout. */
  release?: (err?: Error | boolean) => void;

  connect(): Promise<StubClient>;
  connect(callback: Callback<StubClient>): void;
  query(
    textOrConfig: string | { text: string; values?: unknown[] },
    values?: unknown[],
  ): Promise<StubQueryResult>;
  query(
    textOrConfig: string | { text: string; values?: unknown[] },
    callback: Callback<StubQueryResult>,
  ): void;
  query(
    textOrConfig: string | { text: string; values?: unknown[] },
    values: unknown[] | undefined,
    callback: Callback<StubQueryResult>,
  ): void;
  query<S extends Submittable>(submittable: S, values?: unknown, callback?: unknown): S;
  end(): Promise<void>;
  end(callback: (err?: Error) => void): void;
  isConnected(): boolean;
  ref(): void;
  unref(): void;
  getTransactionStatus(): string;
  /** Makes the connection fail as if the socket died: not queryable, pending queries fail, emits 'error'. */
  simulateError(err: Error): void;
  /** As if the server closed the connection: `simulateError` then the client ends and emits 'end'. */
  simulateTermination(err?: Error): void;
}

export interface StubClientClass {
  new (options?: unknown): StubClient;
  /** The live knobs of this class. */
  readonly knobs: StubClientKnobs;
  readonly stats: StubClientStats;
  readonly instances: StubClient[];
  /** Zeroes `stats` and empties `instances` (in place). */
  reset(): void;
}

let nextProcessID = 10_000;

function emptyStats(): StubClientStats {
  return {
    created: 0,
    connected: 0,
    ended: 0,
    open: 0,
    maxOpen: 0,
    queries: 0,
    connectAttempts: 0,
    connectFailures: 0,
    queryFailures: 0,
  };
}

/**
 * Makes a new stub client class with its own knobs, stats and instance list.
 *
 * With TypeScript and @types/pg, pass it as `Client: StubClient as unknown as typeof pg.Client`.
 */
export function createStubClientClass(knobs: StubClientKnobs = {}): StubClientClass {
  const stats = emptyStats();
  const instances: StubClient[] = [];

  function schedule(ms: number | undefined, fn: () => void): () => void {
    const delay = ms ?? 0;
    if (delay > 0) {
      const clock = knobs.clock;
      if (clock) {
        const handle = clock.setTimeout(fn, delay);
        return () => clock.clearTimeout(handle);
      }
      const handle = setTimeout(fn, delay);
      return () => clearTimeout(handle);
    }
    const handle = setImmediate(fn);
    return () => clearImmediate(handle);
  }

  class Stub extends EventEmitter implements StubClient {
    static readonly knobs = knobs;
    static readonly stats = stats;
    static readonly instances = instances;

    static reset(): void {
      Object.assign(stats, emptyStats());
      instances.length = 0;
    }

    readonly options: unknown;
    _queryable = false;
    _ending = false;
    _connected = false;
    _connecting = false;
    _ended = false;
    processID: number | null = null;
    readonly pipeline: boolean;
    readonly queries: string[] = [];
    release?: (err?: Error | boolean) => void;

    #connectCallback: ((err: Error | undefined) => void) | undefined;
    #cancelConnect: (() => void) | undefined;
    #queue: PendingQuery[] = [];
    #active: PendingQuery | undefined;
    #cancelActive: (() => void) | undefined;
    #endWaiters: Array<() => void> = [];

    constructor(options?: unknown) {
      super();
      this.options = options;
      this.pipeline = Boolean((options as { pipeline?: unknown } | undefined)?.pipeline);
      stats.created++;
      instances.push(this);
    }

    connect(): Promise<StubClient>;
    connect(callback: Callback<StubClient>): void;
    connect(callback?: Callback<StubClient>): Promise<StubClient> | undefined {
      if (callback) {
        this.#connect((err) => (err ? callback(err) : callback(undefined, this)));
        return undefined;
      }
      return new Promise((resolve, reject) => {
        this.#connect((err) => (err ? reject(err) : resolve(this)));
      });
    }

    #connect(done: (err: Error | undefined) => void): void {
      if (this._connecting || this._connected || this._ending) {
        const err = new Error('Client has already been connected. You cannot reuse a client.');
        process.nextTick(() => done(err));
        return;
      }
      const attempt = ++stats.connectAttempts;
      this._connecting = true;
      this.#connectCallback = done;
      if (knobs.hangConnect) return;
      this.#cancelConnect = schedule(knobs.connectDelayMs, () => {
        this.#cancelConnect = undefined;
        const err = knobs.failConnect?.(attempt);
        if (err) {
          stats.connectFailures++;
          this.#finishConnect(err);
          return;
        }
        this._connected = true;
        this._queryable = true;
        this.processID = ++nextProcessID;
        stats.connected++;
        stats.open++;
        if (stats.open > stats.maxOpen) stats.maxOpen = stats.open;
        this.#finishConnect(undefined);
        this.#pulse();
      });
    }

    #finishConnect(err: Error | undefined): void {
      const done = this.#connectCallback;
      this.#connectCallback = undefined;
      this._connecting = false;
      if (err) this.#failAll(err);
      done?.(err);
    }

    isConnected(): boolean {
      return this._connected && !this._ended;
    }

    // biome-ignore lint/suspicious/noExplicitAny: mirrors pg's loosely typed query()
    query(config: any, values?: any, callback?: any): any {
      if (config == null) throw new TypeError('Client was passed a null or undefined query');
      const submittable = typeof config.submit === 'function' ? (config as Submittable) : undefined;
      const text: string = typeof config === 'string' ? config : String(config.text ?? '');
      let vals: unknown[] | undefined = Array.isArray(values) ? values : config.values;
      let cb: Callback<StubQueryResult> | undefined;
      if (typeof values === 'function') {
        cb = values;
        vals = config.values;
      } else if (typeof callback === 'function') {
        cb = callback;
      } else if (typeof config === 'object' && typeof config.callback === 'function') {
        cb = config.callback;
      }
      if (submittable && cb && !submittable.callback) submittable.callback = cb;

      let result: Promise<StubQueryResult> | undefined;
      let deliver: (err: Error | undefined, res?: StubQueryResult) => void;
      if (submittable) {
        deliver = (err, res) => {
          if (submittable.callback) submittable.callback(err, res);
          else if (err) submittable.emit?.('error', err);
          else submittable.emit?.('end', res);
        };
      } else if (cb) {
        const fn = cb;
        deliver = (err, res) => fn(err, res);
      } else {
        let resolve!: (r: StubQueryResult) => void;
        let reject!: (e: Error) => void;
        result = new Promise((res, rej) => {
          resolve = res;
          reject = rej;
        });
        deliver = (err, res) => (err ? reject(err) : resolve(res as StubQueryResult));
      }

      const refuse = (message: string) => process.nextTick(() => deliver(new Error(message)));
      if (this._ending) refuse('Client was closed and is not queryable');
      else if (this._connected && !this._queryable)
        refuse('Client has encountered a connection error and is not queryable');
      else if (!this._connected && !this._connecting) refuse('Client is not connected (stub)');
      else {
        this.#queue.push({ text, values: vals, done: deliver });
        this.#pulse();
      }
      return submittable ?? result;
    }

    #pulse(): void {
      if (this.#active || !this._connected || !this._queryable) return;
      const q = this.#queue.shift();
      if (!q) return;
      this.#active = q;
      stats.queries++;
      this.queries.push(q.text);
      const err = knobs.failQuery?.(q.text);
      this.#cancelActive = schedule(knobs.queryDelayMs, () => {
        this.#active = undefined;
        this.#cancelActive = undefined;
        if (err) {
          stats.queryFailures++;
          q.done(err);
        } else {
          const custom = knobs.respond?.(q.text, q.values);
          q.done(undefined, { rows: [], rowCount: 0, command: 'SELECT', fields: [], ...custom });
        }
        this.#pulse();
      });
    }

    #failAll(err: Error): void {
      const pending = this.#active ? [this.#active, ...this.#queue] : [...this.#queue];
      this.#cancelActive?.();
      this.#cancelActive = undefined;
      this.#active = undefined;
      this.#queue = [];
      for (const q of pending) {
        stats.queryFailures++;
        q.done(err);
      }
    }

    end(): Promise<void>;
    end(callback: (err?: Error) => void): void;
    end(callback?: (err?: Error) => void): Promise<void> | undefined {
      const wait = new Promise<void>((resolve) => {
        if (this._ended) resolve();
        else this.#endWaiters.push(resolve);
      });
      if (!this._ending) {
        this._ending = true;
        stats.ended++;
        if (this._connecting) {
          this.#cancelConnect?.();
          this.#cancelConnect = undefined;
          stats.connectFailures++;
          const err = new Error('Connection terminated');
          process.nextTick(() => this.#finishConnect(err));
        }
        this.#failAll(new Error('Connection terminated'));
        setImmediate(() => this.#markEnded());
      }
      if (callback) {
        wait.then(() => callback());
        return undefined;
      }
      return wait;
    }

    #markEnded(): void {
      if (this._ended) return;
      this._ended = true;
      this._ending = true;
      this._queryable = false;
      if (this._connected) {
        this._connected = false;
        stats.open--;
      }
      this.emit('end');
      const waiters = this.#endWaiters;
      this.#endWaiters = [];
      for (const w of waiters) w();
    }

    ref(): void {}
    unref(): void {}

    getTransactionStatus(): string {
      return 'I';
    }

    simulateError(err: Error): void {
      this._queryable = false;
      this.#failAll(err);
      this.emit('error', err);
    }

    simulateTermination(err: Error = new Error('Connection terminated unexpectedly')): void {
      if (this._ended) return;
      this.simulateError(err);
      if (!this._ending) {
        this._ending = true;
        stats.ended++;
      }
      this.#markEnded();
    }
  }

  return Stub;
}
