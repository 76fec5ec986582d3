/**
 * `pgwarden demo`: the live incident demo (what `npm start` runs).
 *
 *   pgwarden demo                           start it and keep it running; keys 1-6 inject a fault
 *   pgwarden demo --scenario leak           inject a fault into the running demo (another terminal),
 *                                           or, when none runs, start one, play it and stop
 *   pgwarden demo --scenario all --json     play every scenario headless, print the results as JSON
 *
 * A running demo writes a state file (mode 0600) in the temp directory with its control address and
 * token, so a second `pgwarden demo --scenario` can find it; it is removed when the demo stops.
 */
import { timingSafeEqual } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Demo, ScenarioResult } from '../demo/demo.js';
import { SCENARIOS } from '../demo/names.js';
import { terminalSafe } from '../render/text.js';
import type { Io } from './doctor.js';

export interface DemoFlags {
  scenario?: string;
  json?: boolean;
  port?: string;
  keys?: boolean;
}

type DemoClass = typeof import('../demo/demo.js').Demo;

interface DemoState {
  pid: number;
  control: string;
  token: string;
  dashboard: string;
  service: string;
  postgres: { pid: number | undefined; dataDir: string; port: number };
}

/**
 * Where a running demo leaves its control address: `state.json` in a directory of the user's own
 * (mode 0700) under the temp directory, or PGWARDEN_DEMO_STATE.
 */
export function demoStatePath(env: Record<string, string | undefined> = process.env): string {
  return env.PGWARDEN_DEMO_STATE ?? path.join(tmpdir(), `pgwarden-demo-${userInfo().uid}`, 'state.json');
}

/**
 * The state file's directory must be this user's own, private and not a link: otherwise another
 * local user could read the token or plant a control address. Creates it when missing.
 */
function privateStateDir(file: string, create: boolean): boolean {
  const dir = path.dirname(file);
  if (create) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch {
    return false;
  }
  const uid = process.getuid?.();
  return st.isDirectory() && (uid === undefined || st.uid === uid) && (st.mode & 0o077) === 0;
}

function writeState(file: string, state: DemoState, env: Record<string, string | undefined>): void {
  if (!env.PGWARDEN_DEMO_STATE && !privateStateDir(file, true)) {
    throw new Error(
      `${path.dirname(file)} is not a private directory of this user: remove it and start again`,
    );
  }
  rmSync(file, { force: true });
  writeFileSync(file, JSON.stringify(state), { mode: 0o600, flag: 'wx' });
}

const KEYS = SCENARIOS.map((name, i) => `${i + 1} ${name}`).join('  ');

export async function runDemo(flags: DemoFlags, io: Io, signal?: AbortSignal): Promise<number> {
  const names =
    flags.scenario === undefined ? [] : flags.scenario === 'all' ? [...SCENARIOS] : [flags.scenario];
  for (const name of names) {
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      io.err(`pgwarden demo: unknown scenario "${name}": choose one of ${SCENARIOS.join(', ')} or all\n`);
      return 3;
    }
  }
  let port: number | undefined;
  if (flags.port !== undefined) {
    port = Number(flags.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      io.err(`pgwarden demo: --port takes a port number, got "${flags.port}"\n`);
      return 3;
    }
  }
  // Code sites in the narration name the TypeScript source lines: source maps are read only for
  // modules loaded after this, hence the dynamic import of the demo.
  process.setSourceMapsEnabled?.(true);
  const { Demo } = await import('../demo/demo.js');
  if (names.length > 0) {
    const running = findRunningDemo(io.env);
    if (running && names.length === 1) return playRemote(running, names[0] as string, flags, io);
    return playLocal(Demo, names, flags, io, port, signal);
  }
  return interactive(Demo, io, port, flags.keys !== false, signal);
}

function findRunningDemo(env: Record<string, string | undefined>): DemoState | undefined {
  const file = demoStatePath(env);
  if (!env.PGWARDEN_DEMO_STATE && !privateStateDir(file, false)) return undefined;
  let state: DemoState;
  try {
    if (!lstatSync(file).isFile()) return undefined;
    state = JSON.parse(readFileSync(file, 'utf8')) as DemoState;
  } catch {
    return undefined;
  }
  if (typeof state.control !== 'string' || !/^http:\/\/127\.0\.0\.1:\d+$/.test(state.control))
    return undefined;
  return running(state.pid) ? state : undefined;
}

/** Starts a demo, plays the scenarios one after another, stops. */
async function playLocal(
  Demo: DemoClass,
  names: string[],
  flags: DemoFlags,
  io: Io,
  port: number | undefined,
  signal?: AbortSignal,
): Promise<number> {
  // With --json, stdout carries only the JSON; the narration goes to stderr.
  const narrate = flags.json ? io.err : io.out;
  narrate('pgwarden demo: starting PostgreSQL, VitalStream and the agent…\n');
  let demo: Demo;
  try {
    demo = await Demo.start({ log: (line) => narrate(`${line}\n`), ...(port === undefined ? {} : { port }) });
  } catch (err) {
    io.err(`pgwarden demo: could not start: ${(err as Error).message}\n`);
    return 2;
  }
  const results: ScenarioResult[] = [];
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    void demo.stop();
  };
  signal?.addEventListener('abort', stop, { once: true });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    narrate(`dashboard ${demo.dashboardUrl} · VitalStream ${demo.serviceUrl}\n`);
    for (const name of names) {
      if (interrupted) break;
      results.push(await demo.play(name));
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await demo.stop();
  }
  if (interrupted) {
    io.err('pgwarden demo: interrupted; PostgreSQL and its data directory are gone\n');
    return 130;
  }
  if (flags.json) io.out(`${JSON.stringify(results, null, 2)}\n`);
  else io.out(renderResults(results));
  return results.length === names.length && results.every((r) => r.ok) ? 0 : 1;
}

/** Sends the scenario to the demo running in another terminal and prints its narration. */
async function playRemote(state: DemoState, name: string, flags: DemoFlags, io: Io): Promise<number> {
  const headers = { authorization: `Bearer ${state.token}` };
  const narrate = flags.json ? io.err : io.out;
  const started = await fetch(`${state.control}/scenarios/${name}`, { method: 'POST', headers }).catch(
    (err: Error) => err,
  );
  if (started instanceof Error || !started.ok) {
    const why =
      started instanceof Error ? started.message : ((await started.json()) as { error: string }).error;
    io.err(`pgwarden demo: the running demo (pid ${state.pid}) refused the scenario: ${why}\n`);
    return 2;
  }
  narrate(`pgwarden demo: ${name} injected into the running demo (dashboard ${state.dashboard})\n`);
  let shown = 0;
  for (;;) {
    await sleep(250);
    const res = await fetch(`${state.control}/scenarios/current`, { headers }).catch(() => undefined);
    if (!res?.ok) {
      io.err('pgwarden demo: the running demo stopped answering\n');
      return 2;
    }
    const body = (await res.json()) as { lines: string[]; result: ScenarioResult | null };
    for (const line of body.lines.slice(shown)) narrate(`${terminalSafe(String(line))}\n`);
    shown = body.lines.length;
    if (body.result) {
      io.out(flags.json ? `${JSON.stringify([body.result], null, 2)}\n` : renderResults([body.result]));
      return body.result.ok ? 0 : 1;
    }
  }
}

/** `npm start`: runs until Ctrl-C (or q); keys and the control endpoint inject faults. */
async function interactive(
  Demo: DemoClass,
  io: Io,
  port: number | undefined,
  keys: boolean,
  signal?: AbortSignal,
): Promise<number> {
  io.out(
    'pgwarden demo: starting an embedded PostgreSQL, the VitalStream service and pgwarden watch (auto)…\n',
  );
  const lines: string[] = [];
  let result: ScenarioResult | null = null;
  const say = (line: string) => {
    lines.push(line);
    io.out(`${line}\n`);
  };
  let demo: Demo;
  try {
    demo = await Demo.start({ log: say, ...(port === undefined ? {} : { port }) });
  } catch (err) {
    io.err(`pgwarden demo: could not start: ${(err as Error).message}\n`);
    return 2;
  }
  const statePath = demoStatePath(io.env);
  let exitCode = 0;
  let last = demo.postgres;
  const play = (name: string): string | undefined => {
    if (demo.busy) return `scenario ${demo.busy} is still running`;
    lines.length = 0;
    result = null;
    demo.play(name).then(
      (r) => {
        result = r;
        io.out(renderResults([r]));
      },
      (err: Error) => say(`pgwarden demo: ${err.message}`),
    );
    return undefined;
  };
  let control: { url: string; close(): Promise<void> } | undefined;
  const stdin = process.stdin;
  let status: ReturnType<typeof setInterval> | undefined;
  const listeners: (() => void)[] = [];
  try {
    control = await startControl(demo.token, play, () => ({ lines, result }));
    const pg = demo.postgres;
    writeState(
      statePath,
      {
        pid: process.pid,
        control: control.url,
        token: demo.token,
        dashboard: demo.dashboardUrl,
        service: demo.serviceUrl,
        postgres: { pid: pg.pid, dataDir: pg.dataDir, port: pg.port },
      },
      io.env,
    );
    io.out(
      [
        '',
        `  PostgreSQL ${pg.version}   127.0.0.1:${pg.port} (temporary data directory, removed on exit)`,
        `  VitalStream       ${demo.serviceUrl}  (20 monitors posting vital signs, 4 ward screens reading)`,
        `  pgwarden          ${demo.dashboardUrl}  (watch, auto mode)`,
        `  token             ${demo.token}  (for acknowledge, resolve and execute in the dashboard)`,
        '',
        `  Inject a fault: ${keys && stdin.isTTY ? `press ${KEYS}, or run` : 'run'} \`npx pgwarden demo --scenario <name>\``,
        `  in another terminal (${SCENARIOS.join(', ')}). ${keys && stdin.isTTY ? 'q or ' : ''}Ctrl-C stops everything.`,
        '',
      ].join('\n'),
    );
    status = setInterval(() => {
      if (!demo.busy) io.out(`${new Date().toISOString().slice(11, 19)} ${demo.statusLine()}\n`);
    }, 5000);
    await new Promise<void>((resolve) => {
      const finish = () => resolve();
      // biome-ignore lint/suspicious/noExplicitAny: EventEmitter listeners take any arguments
      const on = (target: NodeJS.EventEmitter, event: string, fn: (...args: any[]) => void) => {
        target.on(event, fn);
        listeners.push(() => target.off(event, fn));
      };
      if (signal) {
        signal.addEventListener('abort', finish, { once: true });
        listeners.push(() => signal.removeEventListener('abort', finish));
      }
      on(process, 'SIGINT', finish);
      on(process, 'SIGTERM', finish);
      if (keys && stdin.isTTY) {
        stdin.setRawMode(true);
        stdin.resume();
        on(stdin, 'data', (data: Buffer) => {
          const key = data.toString('utf8');
          if (key === '\u0003' || key === 'q') return finish();
          const name = SCENARIOS[Number(key) - 1];
          if (name) {
            const refused = play(name);
            if (refused) io.out(`pgwarden demo: ${refused}\n`);
          }
        });
      }
    });
  } catch (err) {
    io.err(`pgwarden demo: ${(err as Error).message}\n`);
    exitCode = 2;
  } finally {
    io.out('\npgwarden demo: stopping…\n');
    clearInterval(status);
    for (const off of listeners) off();
    if (stdin.isTTY) {
      stdin.setRawMode(false);
      stdin.pause();
    }
    rmSync(statePath, { force: true });
    await control?.close();
    last = demo.postgres;
    await demo.stop();
  }
  // Checked, not assumed: the process's exit hooks would hide a stop that left things behind.
  if (existsSync(last.dataDir) || (last.pid !== undefined && running(last.pid))) {
    io.err(`pgwarden demo: PostgreSQL did not stop cleanly (${last.dataDir})\n`);
    return 1;
  }
  io.out('pgwarden demo: stopped; PostgreSQL and its data directory are gone\n');
  return exitCode;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startControl(
  token: string,
  play: (name: string) => string | undefined,
  current: () => { lines: string[]; result: ScenarioResult | null },
): Promise<{ url: string; close(): Promise<void> }> {
  const expected = Buffer.from(`Bearer ${token}`);
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return send(res, 401, { error: 'a bearer token is required' });
    const parts = (req.url ?? '/').split('?')[0]?.split('/').filter(Boolean) ?? [];
    if (req.method === 'GET' && parts[0] === 'scenarios' && parts[1] === 'current')
      return send(res, 200, current());
    if (req.method === 'POST' && parts[0] === 'scenarios' && parts[1]) {
      if (!(SCENARIOS as readonly string[]).includes(parts[1]))
        return send(res, 404, { error: `unknown scenario "${parts[1]}"` });
      const refused = play(parts[1]);
      return refused ? send(res, 409, { error: refused }) : send(res, 202, { scenario: parts[1] });
    }
    return send(res, 404, { error: 'no such route' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const cell = (v: number | null) => (v === null ? '—' : `${v.toFixed(1)} s`);

/** The results as a small table (seconds from the fault's start). */
export function renderResults(results: ScenarioResult[]): string {
  const rows = [
    ['scenario', 'detected', 'incident', 'remedy', 'recovered', 'resolved', 'failed/total', 'result'],
    ...results.map((r) => [
      r.scenario,
      cell(r.detectedAfter),
      cell(r.incidentAfter),
      cell(r.remediationAfter),
      cell(r.recoveredAfter),
      cell(r.resolvedAfter),
      `${r.requests.failed}/${r.requests.total}`,
      r.ok ? 'ok' : `FAILED (${r.problems.join('; ')})`,
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  const lines = rows.map((row) =>
    row
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
  return `\n${lines.join('\n')}\n(seconds from the fault's start)\n`;
}
