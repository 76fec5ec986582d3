export * from './fake-clock.js';
export * from './postgres.js';
export * from './stub-client.js';
export * from './helpers.js';
