export * from './fake-clock.js';
export * from './binaries.js';
export * from './pgbouncer.js';
export * from './postgres.js';
export * from './stub-client.js';
export * from './helpers.js';
export * from './tcp-proxy.js';
export * from './prometheus.js';
