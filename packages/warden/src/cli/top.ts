/**
 * `pgwarden top`: a live view of the server's sessions in the manner of pg_activity. It redraws
 * every interval on the alternate screen, switches views by key, and cancels (`k`) or terminates
 * (`K`) the selected session through the remedy engine after a y/N confirmation, writing the audit
 * log. A lost connection is shown in the header and retried at the next refresh.
 */
import { FileAuditLog, defaultAuditPath } from '../remedy/audit.js';
import { describeOutcome, executePlan } from '../remedy/executor.js';
import { DEFAULT_POLICY, type RemedyPolicy, planRemedies } from '../remedy/planner.js';
import { redact } from '../probe/errors.js';
import { PostgresProbe } from '../probe/postgres.js';
import type { Snapshot } from '../snapshot.js';
import { type Key, parseKeys } from '../top/keys.js';
import { CURSOR_MARK, type TopView, renderTop, topRows } from '../top/render.js';
import { UsageError, parseDurationSeconds } from './durations.js';
import type { Io } from './doctor.js';

export interface TopFlags {
  url?: string;
  interval?: string;
  auditLog?: string;
  allowSuperuser?: boolean;
  protectApp?: string[];
}

/** Where keys come from and how big the screen is (the process's own TTY by default). */
export interface TopInput {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  size: () => { columns: number; rows: number };
  onResize?: (listener: () => void) => () => void;
}

function processInput(): TopInput {
  return {
    stdin: process.stdin,
    size: () => ({ columns: process.stdout.columns || 80, rows: process.stdout.rows || 24 }),
    onResize: (listener) => {
      process.stdout.on('resize', listener);
      return () => process.stdout.off('resize', listener);
    },
  };
}

export async function runTop(flags: TopFlags, io: Io, input: TopInput = processInput()): Promise<number> {
  const url = flags.url ?? io.env.DATABASE_URL;
  let intervalMs: number;
  try {
    if (!url) throw new UsageError('no database given: pass --url postgres://… or set DATABASE_URL');
    intervalMs = Math.max(100, parseDurationSeconds('--interval', flags.interval ?? '1s') * 1000);
  } catch (err) {
    io.err(`pgwarden top: ${(err as Error).message}\n`);
    return 3;
  }
  const policy: RemedyPolicy = {
    ...DEFAULT_POLICY,
    protectedApplications: flags.protectApp ?? [],
    allowSuperusers: flags.allowSuperuser === true,
    maxSessionsPerRun: 1,
    // One session chosen by hand: the share-of-clients cap (made for broad runs) would refuse it
    // whenever few clients are connected.
    maxShareOfClients: 1,
    graceMillis: 0,
  };
  const audit = new FileAuditLog(flags.auditLog ?? defaultAuditPath(io.env));
  const probe = new PostgresProbe(url);
  const view: TopView = { mode: 'all', filter: '', intervalLabel: flags.interval ?? '1s' };
  let snapshot: Snapshot | null = null;
  let selectedPid: number | undefined;
  let cursor = 0;
  let confirm: { pid: number; terminate: boolean } | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  // One connection: a remedy must never run inside a snapshot's read-only transaction.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };

  const draw = () => {
    if (stopped) return;
    const { columns, rows } = input.size();
    const list = topRows(snapshot, view);
    const found = selectedPid === undefined ? -1 : list.findIndex((r) => r.session.pid === selectedPid);
    cursor = Math.max(0, Math.min(found >= 0 ? found : cursor, list.length - 1));
    selectedPid = list[cursor]?.session.pid;
    const lines = renderTop(snapshot, view, cursor, columns, rows).map((l) =>
      l.startsWith(CURSOR_MARK) ? `\x1b[7m${l}\x1b[0m` : l,
    );
    io.out(`\x1b[H${lines.join('\x1b[K\r\n')}\x1b[K\x1b[J`);
  };

  const refresh = async () => {
    try {
      snapshot = await serial(() => probe.snapshot());
      view.error = undefined;
    } catch (err) {
      view.error = redact((err as Error).message, url);
      await probe.close();
    }
    draw();
    if (!stopped) timer = setTimeout(refresh, intervalMs);
  };

  const act = async (pid: number, terminate: boolean) => {
    view.status = `${terminate ? 'terminating' : 'cancelling'} pid ${pid}…`;
    draw();
    try {
      const outcome = await serial(async () => {
        const current = await probe.snapshot();
        snapshot = current;
        const plan = planRemedies(
          current,
          {
            olderThanSeconds: 0,
            pids: [pid],
            actionsInLastHour: audit.actionsSince(Date.now() - 3_600_000),
          },
          policy,
        );
        const report = await executePlan((text, values) => probe.execute(text, values), plan, {
          policy,
          audit,
          serverMajor: probe.serverMajor,
          database: current.server.database,
          cancelOnly: !terminate,
        });
        return { plan, report };
      });
      const o = outcome.report.outcomes[0];
      const refusal = outcome.plan.refusals[0];
      if (o) {
        view.status = `${describeOutcome(o)} · audit log ${audit.file}`;
      } else if (refusal) view.status = `pid ${pid}: refused, ${refusal.reason}`;
      else view.status = `pid ${pid}: no such session any more`;
    } catch (err) {
      view.status = `pid ${pid}: ${redact((err as Error).message, url)}`;
      await probe.close();
    }
    draw();
  };

  const isTTY = input.stdin.isTTY === true && typeof input.stdin.setRawMode === 'function';
  return await new Promise<number>((resolve) => {
    const stopResize = input.onResize?.(draw);
    const onData = (data: Buffer | string) => {
      for (const key of parseKeys(data.toString())) handle(key);
    };
    const quit = () => {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      stopResize?.();
      input.stdin.off('data', onData);
      input.stdin.off('end', quit);
      process.off('SIGINT', quit);
      process.off('SIGTERM', quit);
      if (isTTY) input.stdin.setRawMode?.(false);
      input.stdin.pause();
      io.out('\x1b[0m\x1b[?25h\x1b[?1049l');
      chain.finally(() => probe.close()).then(() => resolve(0));
    };
    const handle = (key: Key) => {
      if (stopped) return;
      if (key.name === 'interrupt') return quit();
      if (confirm) {
        const { pid, terminate } = confirm;
        confirm = undefined;
        view.prompt = undefined;
        if (key.name === 'char' && (key.char === 'y' || key.char === 'Y')) void act(pid, terminate);
        else view.status = `${terminate ? 'terminate' : 'cancel'} of pid ${pid}: not done`;
        return draw();
      }
      if (view.editingFilter) {
        if (key.name === 'enter') view.editingFilter = false;
        else if (key.name === 'escape') {
          view.editingFilter = false;
          view.filter = '';
        } else if (key.name === 'backspace') view.filter = Array.from(view.filter).slice(0, -1).join('');
        else if (key.name === 'char') view.filter += key.char;
        cursor = 0;
        selectedPid = undefined;
        return draw();
      }
      if (key.name === 'up' || key.name === 'down') {
        cursor = Math.max(0, cursor + (key.name === 'up' ? -1 : 1));
        selectedPid = undefined;
        return draw();
      }
      if (key.name === 'escape') {
        view.filter = '';
        return draw();
      }
      if (key.name !== 'char') return;
      switch (key.char) {
        case 'q':
          return quit();
        case 'a':
        case 'b':
        case 'B':
          view.mode = key.char === 'a' ? 'all' : key.char === 'b' ? 'blocked' : 'blocking';
          cursor = 0;
          selectedPid = undefined;
          return draw();
        case '/':
          view.editingFilter = true;
          view.filter = '';
          return draw();
        case 'k':
        case 'K': {
          if (selectedPid === undefined) {
            view.status = 'no session selected';
            return draw();
          }
          const terminate = key.char === 'K';
          const s = snapshot?.sessions.find((x) => x.pid === selectedPid);
          confirm = { pid: selectedPid, terminate };
          view.prompt = `${terminate ? 'Terminate (cancel, then terminate)' : 'Cancel the query of'} pid ${selectedPid} (${s?.user ?? '?'}, ${s?.application || '–'})? y/N`;
          return draw();
        }
      }
    };
    if (isTTY) input.stdin.setRawMode?.(true);
    process.on('SIGINT', quit);
    process.on('SIGTERM', quit);
    input.stdin.on('data', onData);
    input.stdin.on('end', quit);
    input.stdin.resume();
    io.out('\x1b[?1049h\x1b[?25l\x1b[2J');
    draw();
    void refresh();
  });
}
