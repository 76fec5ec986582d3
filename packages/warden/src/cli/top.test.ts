// `pgwarden top` driven in a pseudo-terminal (util-linux `script`) against a real PostgreSQL: it
// shows a session idle in transaction, filters to it, terminates it after y, writes the audit log
// and quits with q.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, adminClient, hasCommand, startPostgres, waitFor } from '@pgwarden/testkit';
import pg from 'pg';
import type { AuditEntry } from '../remedy/audit.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
const plain = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

describe('pgwarden top in a pseudo-terminal', {
  skip: !hasCommand('script') && 'no `script` command',
}, () => {
  let server: EmbeddedServer;
  let dir: string;
  let child: ChildProcessWithoutNullStreams | undefined;
  let victim: pg.Client | undefined;

  before(async () => {
    server = await startPostgres();
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgwarden-top-'));
  });
  after(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await victim?.end().catch(() => undefined);
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('terminates the selected session after confirmation, audits it, and quits with q', {
    timeout: 30_000,
  }, async () => {
    const app = `top${Math.random().toString(36).slice(2, 8)}`;
    const auditLog = path.join(dir, 'audit.jsonl');
    victim = new pg.Client({ connectionString: server.url, application_name: app });
    victim.on('error', () => undefined);
    await victim.connect();
    const pid = (await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    await victim.query('BEGIN');
    await victim.query('SELECT 1');

    const command = [
      'stty cols 120 rows 40;',
      'exec',
      quote(process.execPath),
      quote(CLI),
      'top --url',
      quote(server.url),
      '--interval 300ms --allow-superuser --audit-log',
      quote(auditLog),
    ].join(' ');
    const proc = spawn('script', ['-qfec', command, '/dev/null'], { stdio: 'pipe' });
    child = proc;
    let screen = '';
    proc.stdout.on('data', (d: Buffer) => {
      screen += d.toString();
    });
    proc.stderr.on('data', (d: Buffer) => {
      screen += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const sawAfter = async (what: string, text: string | RegExp, from: number) =>
      waitFor(
        what,
        () => {
          const s = plain(screen.slice(from));
          return typeof text === 'string' ? s.includes(text) : text.test(s);
        },
        10_000,
        20,
      );

    await sawAfter('the session on screen', app, 0);
    let mark = screen.length;
    proc.stdin.write(`/${app}\r`);
    await sawAfter('the filter applied', `filter: ${app} (Esc clears)`, mark);
    mark = screen.length;
    proc.stdin.write('K');
    await sawAfter('the confirmation prompt', new RegExp(`pid ${pid} .*\\? y/N`), mark);
    mark = screen.length;
    proc.stdin.write('y');
    await sawAfter('the outcome', `pid ${pid}: terminate ok`, mark);

    const admin = await adminClient(server.url);
    try {
      await waitFor(
        'the session gone',
        async () =>
          (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rows.length === 0,
        5000,
        50,
      );
    } finally {
      await admin.end();
    }
    const entries = readFileSync(auditLog, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEntry);
    assert.ok(
      entries.some(
        (e) => e.event === 'terminate' && e.pid === pid && e.result === 'ok' && e.application === app,
      ),
      JSON.stringify(entries),
    );

    proc.stdin.write('q');
    assert.equal(await exited, 0);
    assert.ok(screen.includes('\x1b[?1049l'), 'the alternate screen is left');
  });
});
