/**
 * The demo's faults: the runbook's causes of an exhausted pool, each injected the way it happens in
 * production — ordinary requests reaching one of VitalStream's bugs — plus a traffic spike and a
 * database restart.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { EmbeddedServer } from '@pgwarden/testkit';
import type { LoadGenerator } from './load.js';
import { SCENARIOS, type ScenarioName } from './names.js';
import { PATIENTS, VITALS_POOL, type VitalStream } from './vitalstream.js';

export { SCENARIOS, type ScenarioName };

export interface ScenarioContext {
  service: VitalStream;
  load: LoadGenerator;
  server: EmbeddedServer;
}

export interface Scenario {
  name: ScenarioName;
  /** One line: what goes wrong, in the runbook's words. */
  title: string;
  /** The code at fault, as the demo's service names it. */
  culprit: string;
  /**
   * Alert rules that detect it, most specific first (the first to see it counts as detection; the
   * most specific incident that opens is the scenario's incident).
   */
  rules: string[];
  /** Whether pgwarden's remedy engine is expected to act (auto mode). */
  remediable: boolean;
  /**
   * Starts the fault; resolves once it is injected (its requests may stay in flight) or, for a
   * fault that lasts by itself (spike, restart), once it is over.
   */
  inject(ctx: ScenarioContext): Promise<void>;
}

/** As many requests to a buggy route as the pool has connections (steady + burst). */
const POOL_CAPACITY = VITALS_POOL.max + VITALS_POOL.maxOverflow;

/** Sends a request without waiting for its answer (the buggy routes hang until pgwarden acts). */
function fire(ctx: ScenarioContext, path: string, init: RequestInit = {}): void {
  fetch(`${ctx.service.url}${path}`, { ...init, signal: AbortSignal.timeout(120_000) })
    .then((res) => res.arrayBuffer())
    .catch(() => undefined);
}

export const SCENARIO_LIST: Scenario[] = [
  {
    name: 'leak',
    title: 'Connection leak: the patient export forgets to release its connection on an error path',
    culprit: 'VitalStream.exportPatientHistory',
    rules: ['app_pool.waiting', 'sessions.idle_in_transaction', 'connections.usage.critical'],
    remediable: true,
    async inject(ctx) {
      await Promise.all(
        Array.from({ length: POOL_CAPACITY }, (_, i) =>
          fetch(`${ctx.service.url}/api/patients/${(i % PATIENTS) + 1}/export?format=xlsx`, {
            signal: AbortSignal.timeout(10_000),
          })
            .then((res) => res.arrayBuffer())
            .catch(() => undefined),
        ),
      );
    },
  },
  {
    name: 'long-query',
    title: 'Long-running queries: the monthly report turns the statement timeout off',
    culprit: 'VitalStream.monthlyReport',
    rules: ['sessions.long_running', 'app_pool.waiting'],
    remediable: true,
    async inject(ctx) {
      for (let i = 0; i < POOL_CAPACITY; i++) fire(ctx, '/api/reports/monthly');
    },
  },
  {
    name: 'lock-chain',
    title:
      "Lock contention: reassigning a patient holds the patient's row lock while it calls the ward system",
    culprit: 'VitalStream.reassignPatient',
    rules: ['locks.blocking_chain', 'app_pool.waiting'],
    remediable: true,
    async inject(ctx) {
      fire(ctx, '/api/patients/1/reassign', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ward: 'ICU' }),
      });
    },
  },
  {
    name: 'idle-in-transaction',
    title: "Idle in transaction: the lab import opens its transaction before it fetches the partner's data",
    culprit: 'VitalStream.importBatch',
    rules: ['sessions.idle_in_transaction', 'app_pool.waiting'],
    remediable: true,
    async inject(ctx) {
      for (let i = 0; i < POOL_CAPACITY; i++) fire(ctx, '/api/imports', { method: 'POST' });
    },
  },
  {
    name: 'spike',
    title: 'Traffic spike: 150 monitors reconnect at once and post back to back for 8 s',
    culprit: 'traffic (no code at fault: the pool queues and opens its burst connections)',
    rules: ['app_pool.waiting'],
    remediable: false,
    async inject(ctx) {
      await ctx.load.spike(150, 8000);
    },
  },
  {
    name: 'restart',
    title: 'Database restart: PostgreSQL shuts down (fast) and is back 5 s later',
    culprit: 'the database server (every pooled connection is closed by the restart)',
    rules: ['server.unreachable'],
    remediable: false,
    async inject(ctx) {
      await ctx.server.stop('fast');
      await sleep(5000);
      await ctx.server.start();
    },
  },
];

export function scenario(name: string): Scenario {
  const found = SCENARIO_LIST.find((s) => s.name === name);
  if (!found) throw new Error(`unknown scenario "${name}": choose one of ${SCENARIOS.join(', ')} or all`);
  return found;
}
