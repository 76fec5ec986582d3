/**
 * An in-process stand-in for node-postgres's `pg.Client`, for benchmarking pool bookkeeping without a
 * server. It connects on the next turn of the event loop (`setImmediate`), answers every query with an
 * empty result, and carries the two private flags pg-pool reads on release: a client whose `_queryable`
 * is falsy or whose `_ending` is true is removed from the pool instead of going back to the idle list.
 */
import { EventEmitter } from 'node:events';

export interface StubQueryResult {
  command: string;
  rowCount: number;
  rows: unknown[];
  fields: unknown[];
}

type ErrorCallback = (err?: Error) => void;
type QueryCallback = (err: Error | undefined, result: StubQueryResult) => void;

const emptyResult = (): StubQueryResult => ({ command: 'SELECT', rowCount: 0, rows: [], fields: [] });

export class StubClient extends EventEmitter {
  _queryable = true;
  _ending = false;
  readonly options: unknown;

  constructor(options?: unknown) {
    super();
    this.options = options;
  }

  connect(): Promise<void>;
  connect(callback: ErrorCallback): void;
  connect(callback?: ErrorCallback): Promise<void> | undefined {
    const done = new Promise<void>((resolve) => setImmediate(resolve));
    if (!callback) return done;
    done.then(() => callback());
  }

  query(text: unknown, values?: unknown): Promise<StubQueryResult>;
  query(text: unknown, callback: QueryCallback): void;
  query(text: unknown, values: unknown, callback: QueryCallback): void;
  query(
    _text: unknown,
    valuesOrCallback?: unknown,
    maybeCallback?: QueryCallback,
  ): Promise<StubQueryResult> | undefined {
    const callback =
      typeof valuesOrCallback === 'function' ? (valuesOrCallback as QueryCallback) : maybeCallback;
    const result = new Promise<StubQueryResult>((resolve) => setImmediate(() => resolve(emptyResult())));
    if (!callback) return result;
    result.then((value) => callback(undefined, value));
  }

  end(): Promise<void>;
  end(callback: ErrorCallback): void;
  end(callback?: ErrorCallback): Promise<void> | undefined {
    this._ending = true;
    this._queryable = false;
    const done = new Promise<void>((resolve) =>
      setImmediate(() => {
        this.emit('end');
        resolve();
      }),
    );
    if (!callback) return done;
    done.then(() => callback());
  }

  ref(): void {}

  unref(): void {}
}
