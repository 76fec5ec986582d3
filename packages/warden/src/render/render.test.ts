import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Diagnosis, diagnose, summarize } from '../diagnose/index.js';
import type { Finding } from '../finding.js';
import type { Snapshot } from '../snapshot.js';
import {
  active,
  bouncerServer,
  criticalServer,
  idleInTransaction,
  makeSnapshot,
  quietServer,
  session,
  waiting,
} from '../snapshot.fixture.js';
import { renderMarkdown } from './markdown.js';
import { renderTerminal } from './terminal.js';
import { codeBlock, humanBytes, markdownCell, padEnd, terminalSafe, truncate, width } from './text.js';

// ---- helpers ----

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the colour codes is the point
const SGR = /\x1b\[[0-9;]*m/g;
const plain = (text: string) => text.replace(SGR, '');

function controlChars(text: string): string[] {
  return [...text].filter((c) => {
    const cp = c.codePointAt(0) as number;
    return cp !== 0x0a && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f));
  });
}

function section(output: string, title: string): string[] {
  const lines = plain(output).split('\n');
  const start = lines.findIndex((l) => l.startsWith(`── ${title} `));
  assert.ok(start >= 0, `section ${title} missing`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('── '));
  const body = lines.slice(start + 1, end < 0 ? undefined : end);
  while (body[body.length - 1] === '') body.pop();
  return body;
}

/** Joins code lines the terminal broke: a continuation is indented two more spaces than its first line. */
function unwrapCode(lines: string[], first: string): string {
  const at = lines.findIndex((l) => l.trimStart().startsWith(first));
  assert.ok(at >= 0, `no line starts with ${first}`);
  const indent = (lines[at] as string).length - (lines[at] as string).trimStart().length;
  let text = (lines[at] as string).slice(indent);
  for (const line of lines.slice(at + 1)) {
    if (!line.startsWith(' '.repeat(indent + 2)) || line[indent + 2] === undefined) break;
    text += ` ${line.slice(indent + 2)}`;
  }
  return text;
}

const scenarios: [string, () => Snapshot][] = [
  ['quiet', quietServer],
  ['critical', criticalServer],
  ['pgbouncer', bouncerServer],
];

// ---- tests ----

describe('renderTerminal', () => {
  for (const [label, make] of scenarios) {
    it(`fits every line of the ${label} report in the width, coloured or not`, () => {
      const snap = make();
      const diagnosis = diagnose(snap);
      for (const size of [80, 60, 120]) {
        for (const color of [false, true]) {
          for (const verbose of [false, true]) {
            const out = renderTerminal(snap, diagnosis, { color, width: size, verbose });
            for (const line of plain(out).split('\n')) {
              assert.ok(width(line) <= size, `${label} width ${size}: ${width(line)} > ${size}: ${line}`);
            }
            if (!color) assert.ok(!out.includes('\x1b'), 'escape sequence in uncoloured output');
            assert.deepEqual(controlChars(plain(out)), [], 'control character besides newline');
          }
        }
      }
    });
  }

  it('starts with the headline, its status word coloured as the status', () => {
    for (const [, make] of scenarios) {
      const snap = make();
      const diagnosis = diagnose(snap);
      const first = renderTerminal(snap, diagnosis, { color: false }).split('\n')[0] as string;
      assert.ok(first.startsWith(`${diagnosis.status}:`), first);
      const colored = renderTerminal(snap, diagnosis, { color: true }).split('\n')[0] as string;
      const code = { healthy: '1;32', warning: '1;33', critical: '1;31' }[diagnosis.status];
      assert.ok(colored.startsWith(`\x1b[${code}m${diagnosis.status}:`), JSON.stringify(colored));
    }
  });

  it('says so in one line when a section is empty', () => {
    const snap = quietServer();
    const diagnosis = diagnose(snap);
    assert.equal(diagnosis.status, 'healthy');
    const out = renderTerminal(snap, diagnosis, { color: false });
    assert.deepEqual(section(out, 'Long-running queries'), ['  No query running longer than 5m']);
    assert.deepEqual(section(out, 'Locks'), ['  No session waits for a lock another holds']);
    assert.ok(section(out, 'Next steps').includes('  Nothing needs attention.'));
    assert.ok(!plain(out).includes('── PgBouncer'));
  });

  it('shows escape sequences and carriage returns in query text as visible escapes', () => {
    const snap = criticalServer();
    for (const size of [80, 200]) {
      const out = renderTerminal(snap, diagnose(snap), { color: true, width: size });
      const rows = section(out, 'Long-running queries').filter((l) => l.includes('4001'));
      assert.equal(rows.length, 1);
      assert.ok(rows[0]?.includes('\\x1b[2J\\r'), rows[0]);
      assert.ok(!out.includes('\x1b[2J') && !out.includes('\r'));
    }
  });

  it('draws a lock chain as a tree: root blocker first, each waiter indented under its holder', () => {
    const snap = criticalServer();
    const lines = section(renderTerminal(snap, diagnose(snap), { color: false }), 'Locks');
    const row = (pid: number) => lines.findIndex((l) => new RegExp(`^ +(?:[└├│ ]─? *)*${pid} `).test(l));
    const [root, middle, leaf] = [row(2000), row(3001), row(3002)];
    assert.ok(root >= 0 && root < middle && middle < leaf, lines.join('\n'));
    const column = (i: number, pid: number) => (lines[i] as string).indexOf(String(pid));
    assert.equal(column(middle, 3001) - column(root, 2000), 3);
    assert.equal(column(leaf, 3002) - column(root, 2000), 6);
    assert.match(lines[leaf] as string, /^ {2} {3}└─ 3002/);
  });

  it('lists the top finding with the exact text of its actions under Next steps', () => {
    const snap = criticalServer();
    const diagnosis = diagnose(snap);
    const top = diagnosis.findings[0] as Finding;
    assert.equal(top.id, 'sessions.idle_in_transaction');
    const action = top.actions[0]?.text as string;
    const wide = section(renderTerminal(snap, diagnosis, { color: false, width: 200 }), 'Next steps');
    assert.ok(wide.some((l) => l.trim() === action));
    // At 80 columns the statement is broken at spaces outside quotes: the same SQL.
    const narrow = section(renderTerminal(snap, diagnosis, { color: false }), 'Next steps');
    assert.equal(unwrapCode(narrow, action.slice(0, 30)), action);
    assert.ok(narrow.some((l) => l.includes(`1. critical: ${top.title}`)));
    assert.ok(narrow.some((l) => l.includes('more statements like these')));
    // The timeout fix comes after the 40 terminations and is not hidden behind them.
    assert.ok(
      narrow.some((l) => l.trim() === "ALTER SYSTEM SET idle_in_transaction_session_timeout = '5min';"),
    );
  });

  it('shows the idle transactions with their transaction age, oldest first, top 10', () => {
    const snap = criticalServer();
    const lines = section(renderTerminal(snap, diagnose(snap), { color: false }), 'Idle in transaction');
    assert.match(lines[0] as string, /pid .*user .*application .*state .*xact age .*idle .*query/);
    assert.match(lines[1] as string, /^ +2000 +billing +billing-worker +idle in tx +30m\b/);
    assert.equal(lines.filter((l) => /^ +20\d\d /.test(l)).length, 10);
    assert.ok(lines.includes('  … and 30 more'));
  });

  it('shows PgBouncer pools with waiting clients and the backends their servers hold', () => {
    const snap = bouncerServer();
    const diagnosis = diagnose(snap);
    assert.equal(diagnosis.findings.find((f) => f.id === 'pgbouncer.clients_waiting')?.severity, 'critical');
    const lines = section(renderTerminal(snap, diagnosis, { color: false }), 'PgBouncer');
    assert.match(lines.join('\n'), /vitalstream +app +transaction +20 +12 +8\.5s/);
    assert.ok(
      lines.some((l) => /vitalstream\/app active \(20\) → 5000 5001 .* \(\+\d+\)$/.test(l)),
      lines.join('\n'),
    );
  });

  it('escapes database text everywhere it appears: headline, tables, titles', () => {
    const app = 'evil\x1b]0;pwned\x07\x1b[2J';
    const sessions = Array.from({ length: 90 }, (_, i) =>
      session(100 + i, { application: app, user: 'u\r\n' }),
    );
    const snap = makeSnapshot(sessions);
    const diagnosis = diagnose(snap);
    assert.ok(diagnosis.headline.includes('\x1b'), 'the headline quotes the application name');
    for (const color of [false, true]) {
      const out = renderTerminal(snap, diagnosis, { color, width: 100 });
      assert.deepEqual(controlChars(plain(out)), []);
      assert.ok(plain(out).includes('evil\\x1b]0;pwned\\x07\\x1b[2J'));
      assert.ok(plain(out).includes('u\\r\\n'));
    }
  });

  it('keeps every line within very narrow and very wide terminals', () => {
    const snap = criticalServer();
    const diagnosis = diagnose(snap);
    for (const size of [20, 40, 200]) {
      const out = renderTerminal(snap, diagnosis, { color: true, width: size, verbose: true });
      for (const line of plain(out).split('\n')) assert.ok(width(line) <= size, `${size}: ${line}`);
    }
  });

  it('lists every row and every statement when verbose', () => {
    const snap = criticalServer();
    const diagnosis = diagnose(snap);
    const out = renderTerminal(snap, diagnosis, { color: false, width: 200, verbose: true });
    assert.equal(section(out, 'Idle in transaction').filter((l) => /^ +20\d\d /.test(l)).length, 40);
    const steps = section(out, 'Next steps');
    for (let pid = 2000; pid < 2040; pid++)
      assert.ok(steps.some((l) => l.includes(`WHERE pid = ${pid} AND`)));
    assert.ok(!steps.some((l) => l.includes('more statements like these')));
  });

  it('draws a waiter of two holders once, and a lock cycle without looping', () => {
    // 11 holds what 12 and 13 wait for; 14 waits for both 12 and 13; 21 and 22 wait for each other.
    const snap = makeSnapshot([
      idleInTransaction(11, 600),
      waiting(12, 11, 60),
      waiting(13, 11, 50),
      active(14, 40, { waitEventType: 'Lock', waitEvent: 'relation', blockedBy: [12, 13] }),
      waiting(21, 22, 30),
      waiting(22, 21, 30),
    ]);
    const lines = section(renderTerminal(snap, diagnose(snap), { color: false, width: 100 }), 'Locks');
    const text = lines.join('\n');
    assert.match(text, /^ {2}11 /m);
    assert.match(text, /^ {2}├─ 12 /m);
    assert.match(text, /^ {2}│ {2}└─ 14 /m);
    assert.match(text, /^ {2}└─ 13 /m);
    assert.match(text, /^ {5}└─ 14 .*\(shown above\)/m);
    assert.match(text, /^ {2}21 [\s\S]*^ {2}└─ 22 [\s\S]*^ {5}└─ 21 .*\(shown above\)/m);
  });
});

describe('renderMarkdown', () => {
  it('escapes HTML, pipes and control characters in database text so tables keep their columns', () => {
    const snap = criticalServer();
    const md = renderMarkdown(snap, diagnose(snap));
    assert.ok(!md.includes('<img'), 'raw HTML');
    assert.ok(md.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(!md.includes('\x1b') && !md.includes('\r'));
    const columns = (row: string) => row.split(/(?<!\\)\|/).length - 2;
    const longRow = md.split('\n').find((l) => l.startsWith('| 4001 |')) as string;
    assert.equal(columns(longRow), 6);
    assert.ok(longRow.includes("patient\\_id \\|\\| ':' \\|\\| reading"));
    const slowRow = md.split('\n').find((l) => l.startsWith('| 2,500 |')) as string;
    assert.equal(columns(slowRow), 4);
  });

  it('starts with the status and headline and puts each finding’s actions in sql blocks', () => {
    const snap = criticalServer();
    const diagnosis = diagnose(snap);
    const md = renderMarkdown(snap, diagnosis);
    assert.ok(md.startsWith(`## 🔴 ${diagnosis.status}: `));
    assert.match(md, /- \*\*Usage:\*\* 88 \/ 97 usable connections \(91%\)/);
    const top = diagnosis.findings[0] as Finding;
    const nextSteps = md.slice(md.indexOf('### Next steps'));
    assert.ok(
      nextSteps.includes(`\`\`\`sql\n-- terminate pid 2000 (risk: medium)\n${top.actions[0]?.text}\n`),
    );
    assert.match(nextSteps, /_… and 30 more statements like these/);
  });

  it('uses a longer fence when an action contains ``` so the block cannot be closed early', () => {
    const finding: Finding = {
      id: 'queries.slow',
      severity: 'warning',
      title: 'A statement that holds a fence',
      summary: 'It contains ```',
      evidence: {},
      pids: [],
      actions: [{ kind: 'sql', target: 'x\n```\n<b>', text: "SELECT '```';\nSELECT 2;", risk: 'none' }],
      score: 50,
    };
    const diagnosis: Diagnosis = summarize([finding]);
    const md = renderMarkdown(quietServer(), diagnosis);
    assert.ok(md.includes("````sql\n-- sql x\\n```\\n<b>\nSELECT '```';\nSELECT 2;\n````"), md);
  });
});

describe('text helpers', () => {
  it('escapes C0, DEL, C1 and bidi controls visibly', () => {
    assert.equal(
      terminalSafe('a\x1b[31mb\x07\x7f\x9b\u202ec\td\n'),
      'a\\x1b[31mb\\x07\\x7f\\x9b\\u202ec\\td\\n',
    );
    assert.equal(terminalSafe('ünïcødé 表 🐘'), 'ünïcødé 表 🐘');
  });

  it('truncates and pads by code points', () => {
    assert.equal(truncate('🐘🐘🐘🐘', 3), '🐘🐘…');
    assert.equal(truncate('abc', 3), 'abc');
    assert.equal(width(padEnd('é🐘', 5)), 5);
    assert.equal(padEnd('abcdef', 4), 'abc…');
  });

  it('formats sizes and escapes markdown cells', () => {
    assert.equal(humanBytes(512), '512 B');
    assert.equal(humanBytes(8192), '8.0 kB');
    assert.equal(humanBytes(12 * 1024 ** 3), '12 GB');
    assert.equal(
      markdownCell('a|b\n`c` *d* _e_ <i> @here'),
      'a\\|b \\`c\\` \\*d\\* \\_e\\_ &lt;i&gt; @\u200bhere',
    );
    assert.equal(markdownCell(''), ' ');
    assert.equal(codeBlock('x ```` y', 'sql'), '`````sql\nx ```` y\n`````');
  });
});
