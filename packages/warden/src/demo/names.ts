/**
 * The demo's scenario names, on their own: the CLI reads them before it enables source maps and
 * loads the demo (whose code sites should name TypeScript lines).
 */
export const SCENARIOS = [
  'leak',
  'long-query',
  'lock-chain',
  'idle-in-transaction',
  'spike',
  'restart',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
