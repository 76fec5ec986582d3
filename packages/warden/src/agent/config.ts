/**
 * pgwarden.yaml: the agent's configuration, validated, with errors that name the bad key. Every
 * secret may come from the environment (`urlEnv`, `tokenEnv`, `secretEnv`) so the file can be
 * committed; secrets never appear in errors.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { parseDurationSeconds } from '../cli/durations.js';
import type { EscalationLevel } from './types.js';

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return typeof v === 'number' ? v * 1000 : parseDurationSeconds('duration', v) * 1000;
  } catch {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `expected a duration like 30s, 5m or 1h, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
});

const fraction = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : Number(String(v).replace('%', ''));
  const f = typeof v === 'string' && v.includes('%') ? n / 100 : n > 1 ? n / 100 : n;
  if (!Number.isFinite(f) || f <= 0 || f > 1) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `expected a percentage like 75%, got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return f;
});

const database = z
  .object({
    name: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
    url: z.string().optional(),
    urlEnv: z.string().optional(),
    pgbouncer: z.string().optional(),
    pgbouncerEnv: z.string().optional(),
    appPools: z.array(z.string().url()).default([]),
    appPoolsToken: z.string().optional(),
    appPoolsTokenEnv: z.string().optional(),
  })
  .strict();

const notifier = z.discriminatedUnion('kind', [
  z
    .object({
      id: z.string(),
      kind: z.literal('webhook'),
      url: z.string().url(),
      secret: z.string().optional(),
      secretEnv: z.string().optional(),
    })
    .strict(),
  z
    .object({
      id: z.string(),
      kind: z.literal('slack'),
      url: z.string().url().optional(),
      urlEnv: z.string().optional(),
    })
    .strict(),
  z
    .object({
      id: z.string(),
      kind: z.literal('email'),
      smtp: z
        .object({
          host: z.string(),
          port: z.number().int().positive().default(587),
          secure: z.boolean().default(false),
          user: z.string().optional(),
          passwordEnv: z.string().optional(),
        })
        .strict(),
      from: z.string(),
      to: z.array(z.string()).min(1),
    })
    .strict(),
  z
    .object({
      id: z.string(),
      kind: z.literal('pagerduty'),
      routingKeyEnv: z.string(),
      url: z.string().url().optional(),
    })
    .strict(),
  z.object({ id: z.string(), kind: z.literal('stdout') }).strict(),
]);

export const ConfigSchema = z
  .object({
    databases: z.array(database).min(1),
    interval: duration.default('1s'),
    mode: z.enum(['observe', 'suggest', 'auto']).default('observe'),
    environment: z.string().default('production'),
    http: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9187),
        token: z.string().optional(),
        tokenEnv: z.string().optional(),
      })
      .strict()
      .default({}),
    store: z.string().default('pgwarden.db'),
    notifiers: z.array(notifier).default([{ id: 'stdout', kind: 'stdout' }]),
    escalation: z
      .array(
        z
          .object({
            level: z.number().int().positive(),
            after: duration,
            name: z.string(),
            notifiers: z.array(z.string()),
          })
          .strict(),
      )
      .optional(),
    autoResolveAfter: duration.default('5m'),
    rules: z
      .object({
        usageWarning: fraction.optional(),
        usageCritical: fraction.optional(),
        longRunning: duration.optional(),
        idleInTransaction: duration.optional(),
        /** Per-rule settings by rule id (see agent/rules.ts: threshold, clearBelow, forMillis, clearForMillis, enabled, severity). */
        overrides: z
          .record(z.string(), z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])))
          .optional(),
      })
      .strict()
      .default({}),
    remedies: z
      .object({
        activeOlderThan: duration.default('10m'),
        idleInTransactionOlderThan: duration.default('10m'),
        rootBlockerOlderThan: duration.default('5m'),
        maxSessionsPerRun: z.number().int().min(0).default(10),
        maxShareOfClients: fraction.default(0.5),
        maxActionsPerHour: z.number().int().min(0).default(60),
        grace: duration.default('10s'),
        protectedUsers: z.array(z.string()).default([]),
        protectedApplications: z.array(z.string()).default([]),
        allowSuperusers: z.boolean().default(false),
      })
      .strict()
      .default({}),
  })
  .strict();

export type AgentConfig = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The runbook's escalation: Database Team at 15 minutes, Infrastructure Lead at 30, VP of Engineering at 60. */
export const RUNBOOK_ESCALATION: EscalationLevel[] = [
  { level: 1, afterMinutes: 15, name: 'Database Team', notifiers: ['database-team'] },
  { level: 2, afterMinutes: 30, name: 'Infrastructure Lead', notifiers: ['infra-lead'] },
  { level: 3, afterMinutes: 60, name: 'VP of Engineering', notifiers: ['vp-engineering'] },
];

/** Validates a parsed config object; the error names every bad key by its path. */
export function parseConfig(raw: unknown): AgentConfig {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const config = result.data;
  const ids = new Set(config.notifiers.map((n) => n.id));
  for (const level of config.escalation ?? []) {
    for (const id of level.notifiers) {
      if (!ids.has(id))
        throw new ConfigError(
          `invalid configuration: escalation level ${level.level} names notifier "${id}", which is not defined`,
        );
    }
  }
  const names = new Set<string>();
  for (const db of config.databases) {
    if (names.has(db.name))
      throw new ConfigError(`invalid configuration: databases: the name "${db.name}" is used twice`);
    names.add(db.name);
    if (!db.url && !db.urlEnv)
      throw new ConfigError(`invalid configuration: databases.${db.name}: give url or urlEnv`);
  }
  return config;
}

export function loadConfigFile(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseConfig(raw);
}

/** A secret from the file or from the environment variable it names. */
export function secret(
  value: string | undefined,
  envName: string | undefined,
  env: Record<string, string | undefined>,
  what: string,
): string | undefined {
  if (value) return value;
  if (!envName) return undefined;
  const fromEnv = env[envName];
  if (!fromEnv) throw new ConfigError(`${what}: environment variable ${envName} is not set`);
  return fromEnv;
}

/** The configured escalation, or the runbook's levels paging every configured notifier. */
export function escalationPolicy(config: AgentConfig): EscalationLevel[] {
  if (!config.escalation) {
    const all = config.notifiers.map((n) => n.id);
    return RUNBOOK_ESCALATION.map((l) => ({ ...l, notifiers: all }));
  }
  return config.escalation.map((l) => ({
    level: l.level,
    afterMinutes: l.after / 60_000,
    name: l.name,
    notifiers: l.notifiers,
  }));
}
