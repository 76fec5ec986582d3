// `pgwarden top`'s screen, rendered from fake snapshots: the views, the filter, the width and escaping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EVIL_QUERY, criticalServer } from '../snapshot.fixture.js';
import { width } from '../render/text.js';
import { parseKeys } from './keys.js';
import { CURSOR_MARK, type TopView, renderTop, topRows } from './render.js';

const view = (fields: Partial<TopView> = {}): TopView => ({ mode: 'all', filter: '', ...fields });
const rowOf = (lines: string[], pid: number) => lines.find((l) => new RegExp(`^.\\s*${pid} `).test(l));

describe('renderTop', () => {
  it('shows the header: version, usage bar with percentage, backends by state', () => {
    const lines = renderTop(criticalServer(), view(), 0, 120, 40);
    assert.match(lines[0] as string, /PostgreSQL 18\.4/);
    assert.match(lines[0] as string, /refreshed 10:00:00 UTC/);
    assert.match(lines[1] as string, /connections \[#+\.*\] 88\/97 usable 91%/);
    assert.match(lines[2] as string, /idle 45 · idle in transaction 40/);
  });

  it('sorts sessions by age, oldest first, with the cursor on the selected one', () => {
    const lines = renderTop(criticalServer(), view(), 0, 120, 40);
    const first = lines.find((l) => l.startsWith(CURSOR_MARK)) as string;
    assert.match(first, /^>\s+2000 billing\s+billing-worker\s+idle in xact .* 30m /);
  });

  it('blocked view: the waiters with who blocks them', () => {
    const lines = renderTop(criticalServer(), view({ mode: 'blocked' }), 0, 120, 40);
    assert.ok(lines.some((l) => l.includes('blocked by')));
    assert.match(rowOf(lines, 3001) as string, /ledger .*Lock:transactionid .* 2000 /);
    assert.match(rowOf(lines, 3002) as string, /migrate .* 3001 /);
    assert.equal(rowOf(lines, 2001), undefined);
    assert.deepEqual(
      topRows(criticalServer(), view({ mode: 'blocked' })).map((r) => r.session.pid),
      [3001, 3002],
    );
  });

  it('blocking view: the root blocker with how many wait on it', () => {
    const lines = renderTop(criticalServer(), view({ mode: 'blocking' }), 0, 120, 40);
    assert.ok(lines.some((l) => l.includes('waiting')));
    assert.match(rowOf(lines, 2000) as string, /billing-worker .* 2 +UPDATE accounts/);
    assert.equal(rowOf(lines, 3001), undefined);
  });

  it('filters by application, user or query substring', () => {
    const rows = (filter: string) => topRows(criticalServer(), view({ filter })).map((r) => r.session.pid);
    assert.deepEqual(rows('MIGRATE'), [3002]);
    assert.equal(rows('billing').length, 40);
    assert.deepEqual(rows('frozen'), [3001]);
  });

  it('never exceeds the width or the height, and escapes control characters in query text', () => {
    for (const [w, h] of [
      [120, 40],
      [80, 24],
      [40, 10],
      [10, 5],
    ] as const) {
      for (const mode of ['all', 'blocked', 'blocking'] as const) {
        const lines = renderTop(criticalServer(), view({ mode }), 50, w, h);
        assert.ok(lines.length <= h, `${lines.length} lines in ${h}`);
        for (const l of lines) assert.ok(width(l) <= w, `"${l}" wider than ${w}`);
      }
    }
    const lines = renderTop(criticalServer(), view({ filter: 'report' }), 0, 300, 40);
    const evil = rowOf(lines, 4001) as string;
    assert.ok(evil.includes('\\x1b[2J\\rSELECT'), evil);
    assert.ok(!lines.join('').includes('\x1b'));
    assert.ok(!lines.join('').includes('\r'));
    assert.ok(EVIL_QUERY.includes('\x1b'));
  });

  it('keeps the cursor visible when the list scrolls', () => {
    const lines = renderTop(criticalServer(), view(), 80, 120, 20);
    assert.equal(lines.filter((l) => l.startsWith(CURSOR_MARK)).length, 1);
  });

  it('shows a lost connection in the header', () => {
    const lines = renderTop(null, view({ error: 'lost the connection to the server' }), 0, 80, 24);
    assert.match(lines.join('\n'), /! lost the connection to the server \(retrying\)/);
  });
});

describe('parseKeys', () => {
  it('tells arrows, Esc, Enter and Ctrl-C apart', () => {
    assert.deepEqual(parseKeys('\x1b[A\x1b[Bq\r\x1b\x03'), [
      { name: 'up' },
      { name: 'down' },
      { name: 'char', char: 'q' },
      { name: 'enter' },
      { name: 'escape' },
      { name: 'interrupt' },
    ]);
  });
});
