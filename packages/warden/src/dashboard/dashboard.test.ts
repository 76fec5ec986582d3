// The dashboard in a real browser (Debian's chromium through playwright-core) against a real agent and
// PostgreSQL: sessions appear live, database text renders as text (no XSS), and acknowledge needs the
// token. Skipped when /usr/bin/chromium is missing, except under CI=true, where that is a failure.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type EmbeddedServer, startPostgres, uniqueName, waitFor } from '@pgwarden/testkit';
import pg from 'pg';
import { type Browser, type Page, chromium } from 'playwright-core';
import { parseConfig } from '../agent/config.js';
import { type AgentServer, startServer } from '../agent/server.js';
import type { Incident } from '../agent/types.js';
import { Watcher } from '../agent/watch.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'dashboard-token';
const XSS = '<img src=x onerror=alert(1)>';
const haveChromium = existsSync(CHROMIUM);

if (!haveChromium && process.env.CI === 'true') {
  describe('dashboard in a browser', () => {
    it('needs Debian chromium at /usr/bin/chromium under CI', () => {
      assert.fail(`${CHROMIUM} is missing: .ci/run installs the chromium package`);
    });
  });
} else {
  describe('dashboard in a browser', {
    skip: haveChromium ? false : `${CHROMIUM} is missing: apt-get install chromium to run this test`,
  }, () => {
    let server: EmbeddedServer;
    let watcher: Watcher;
    let api: AgentServer;
    let browser: Browser;
    let page: Page;
    const clients: pg.Client[] = [];
    const dialogs: string[] = [];

    const client = async (application_name: string) => {
      const c = new pg.Client({ connectionString: server.url, application_name });
      c.on('error', () => {});
      await c.connect();
      clients.push(c);
      return c;
    };
    const incidents = async (): Promise<Incident[]> =>
      (await fetch(`${api.url}/api/incidents`)).json() as Promise<Incident[]>;

    before(async () => {
      server = await startPostgres();
      const config = parseConfig({
        databases: [{ name: 'vitals', url: server.url }],
        interval: 0.25,
        mode: 'observe',
        store: ':memory:',
        notifiers: [{ id: 'stdout', kind: 'stdout' }],
        rules: {
          idleInTransaction: '1s',
          overrides: {
            'sessions.idle_in_transaction': { forMillis: 300, clearForMillis: 300 },
            'connections.usage': { forMillis: 300, clearForMillis: 300 },
          },
        },
      });
      watcher = new Watcher({ config, env: {}, log: () => {} });
      await watcher.start();
      api = await startServer({ watcher, host: '127.0.0.1', port: 0, token: TOKEN, environment: 'test' });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--no-first-run',
        ],
      });
      page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
    });

    after(async () => {
      await browser?.close();
      await api?.close();
      await watcher?.stop();
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await server?.destroy();
    });

    it('loads, with the live status and the chart', async () => {
      const response = await page.goto(api.url);
      assert.equal(response?.status(), 200);
      assert.match(response?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
      assert.equal(await page.title(), 'pgwarden');
      await page.locator('#databases .db-name', { hasText: 'vitals' }).waitFor({ timeout: 5000 });
      await page.locator('#chart polyline').first().waitFor({ state: 'attached', timeout: 5000 });
    });

    it('shows a new session in the sessions table within 3 s', async () => {
      const app = uniqueName('dash-app');
      await client(app);
      await page.locator('#sessions-body td.app', { hasText: app }).waitFor({ timeout: 3000 });
    });

    it('renders query text from the database as text, never as HTML', async () => {
      const app = uniqueName('dash-xss');
      const c = await client(app);
      await c.query(`BEGIN; SELECT '${XSS}'`);
      const row = page.locator('#sessions-body tr', { hasText: app });
      await row.waitFor({ timeout: 3000 });
      const text = await row.locator('td.query').textContent();
      assert.ok(text?.includes(XSS), `query cell: ${text}`);
      assert.equal(await page.locator('#sessions img').count(), 0, 'no <img> element in the table');
      await page.waitForTimeout(1500); // a few more refreshes
      assert.equal(await page.locator('img').count(), 0, 'no <img> element anywhere');
      assert.deepEqual(dialogs, [], 'no dialog opened');
    });

    it('acknowledges an incident only with the token', async () => {
      await waitFor(
        'the idle-in-transaction incident',
        async () =>
          (await incidents()).some((i) => i.ruleId === 'sessions.idle_in_transaction' && i.state === 'open'),
        15_000,
        100,
      );
      const incident = (await incidents()).find(
        (i) => i.ruleId === 'sessions.idle_in_transaction' && i.state === 'open',
      ) as Incident;
      const row = page.locator(`#incidents-body tr[data-incident-id="${incident.id}"]`);
      await row.waitFor({ timeout: 5000 });
      // The database card lists the alert rules that see something, with their state.
      await page
        .locator('#databases .db-rules li.rule-firing', {
          hasText: /^sessions\.idle_in_transaction firing for \d+s$/,
        })
        .waitFor({ timeout: 5000 });
      assert.equal(
        await row.locator('a', { hasText: 'report' }).getAttribute('href'),
        `/api/incidents/${encodeURIComponent(incident.id)}/report?format=html`,
      );

      await page.fill('#token', '');
      await row.locator('button.ack').click();
      await row.locator('.error').waitFor({ timeout: 5000 });
      assert.match((await row.locator('.error').textContent()) ?? '', /401.*bearer token is required/);
      assert.equal((await incidents()).find((i) => i.id === incident.id)?.state, 'open', 'still open');

      await page.fill('#token', TOKEN);
      assert.equal(await page.evaluate('sessionStorage.getItem("pgwarden.token")'), TOKEN);
      await row.locator('button.ack').click();
      await waitFor(
        'the acknowledgement',
        async () => (await incidents()).find((i) => i.id === incident.id)?.state === 'acknowledged',
        5000,
        50,
      );
      await row.locator('td.istate', { hasText: 'acknowledged' }).waitFor({ timeout: 5000 });
      assert.equal(await row.locator('.error').count(), 0, 'the error is gone');

      const report = await fetch(`${api.url}/api/incidents/${incident.id}/report?format=html`);
      assert.equal(report.status, 200);

      const shot = join(tmpdir(), `pgwarden-dashboard-${Date.now()}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`dashboard screenshot: ${shot}`);
    });

    it('lists a statement the test ran among the slow queries', async (t) => {
      if (!server.pgStatStatements) {
        t.skip('these PostgreSQL binaries do not ship pg_stat_statements');
        return;
      }
      const c = await client(uniqueName('dash-slow'));
      for (let n = 0; n < 3; n++) await c.query('SELECT pg_sleep(0.2)');
      const row = page.locator('#slow-body tr', { hasText: 'pg_sleep' }).first();
      await row.waitFor({ timeout: 5000 });
      // The section refreshes every second; wait for it to show all three calls.
      let cells: string[] = [];
      await waitFor(
        'three calls of pg_sleep in the slow-queries section',
        async () => {
          cells = await row.locator('td').allTextContents();
          return Number(cells[2]) >= 3;
        },
        5000,
        100,
      );
      assert.equal(cells[0], 'vitals');
      assert.ok(Number(cells[1]) >= 190, `mean ms: ${cells[1]}`);
      assert.ok(Number(cells[2]) >= 3, `calls: ${cells[2]}`);
      // No PgBouncer and no application pools are configured: both sections say so.
      await page.locator('#pgbouncer-body', { hasText: 'No PgBouncer' }).waitFor({ timeout: 2000 });
      await page.locator('#apppools', { hasText: 'No application pools' }).waitFor({ timeout: 2000 });
    });

    it('toggles an incident timeline, and refuses to execute a remedy without the token', async () => {
      const incident = (await incidents()).find(
        (i) => i.ruleId === 'sessions.idle_in_transaction' && i.state !== 'resolved',
      ) as Incident;
      assert.ok(incident, 'an unresolved idle-in-transaction incident');
      // Its own page: this one accepts the confirmation, the shared page dismisses every dialog.
      const own = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
      const confirms: string[] = [];
      own.on('dialog', (d) => {
        confirms.push(d.message());
        void d.accept();
      });
      try {
        await own.goto(api.url);
        const row = own.locator(`#incidents-body tr[data-incident-id="${incident.id}"]`);
        await row.waitFor({ timeout: 5000 });
        const timeline = own.locator(`#incidents-body tr[data-timeline-for="${incident.id}"]`);
        await row.locator('td.istate').click();
        await timeline.locator('li', { hasText: 'opened' }).first().waitFor({ timeout: 5000 });
        await row.locator('td.istate').click();
        await timeline.waitFor({ state: 'detached', timeout: 5000 });

        await own.fill('#token', '');
        await row.locator('button.execute').click();
        await row.locator('.error').waitFor({ timeout: 5000 });
        assert.match((await row.locator('.error').textContent()) ?? '', /401.*bearer token is required/);
        assert.equal(confirms.length, 1, 'asked for confirmation once');
        assert.match(confirms[0] ?? '', /Execute the remedy/);
        assert.equal(await timeline.count(), 0, 'the button does not toggle the timeline');
      } finally {
        await own.close();
      }
    });
  });
}
