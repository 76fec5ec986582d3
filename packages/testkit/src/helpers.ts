/** Small helpers the integration tests share. */
import { execFileSync } from 'node:child_process';
import pg from 'pg';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A name no other test (or test process) uses: for pool names and application_names. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Polls `check` until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 3000,
  intervalMs = 5,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A connected client for looking at the server from the side (pg_stat_activity, terminations). */
export async function adminClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'pgwarden-test-admin' });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** How many backends the server has for one application_name. */
export async function countBackends(admin: pg.Client, applicationName: string): Promise<number> {
  const res = await admin.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
    [applicationName],
  );
  return res.rows[0]?.n ?? 0;
}

/** Whether a command runs here (`script --version`, say): tests that need one skip without it. */
export function hasCommand(command: string, args: string[] = ['--version']): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
