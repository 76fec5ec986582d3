/** Capacity planning (`pgwarden plan`) and PgBouncer sizing (`pgwarden pgbouncer-config`): pure. */
export * from './capacity.js';
export * from './pgbouncer-ini.js';
export * from './render.js';
