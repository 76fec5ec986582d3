/** The slice of pg-pool 3 the benchmark uses (the package ships no type declarations). */
declare module 'pg-pool' {
  import { EventEmitter } from 'node:events';

  type ClientConstructor = new (options?: unknown) => object;

  export interface PgPoolOptions {
    max?: number;
    Client?: ClientConstructor;
    [option: string]: unknown;
  }

  export interface PgPoolClient {
    release(err?: Error | boolean): void;
  }

  export default class PgPool extends EventEmitter {
    constructor(options?: PgPoolOptions, Client?: ClientConstructor);
    connect(): Promise<PgPoolClient>;
    query(text: string): Promise<unknown>;
    end(): Promise<void>;
  }
}
