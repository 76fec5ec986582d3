// Notifiers against servers started here on 127.0.0.1 (HTTP and an SMTP sink): Standard Webhooks
// signatures and stable message ids, Slack escaping and 429/Retry-After, e-mail bodies, PagerDuty's
// dedup_key across trigger/acknowledge/resolve, retry policy, and secrets kept out of every error.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { FakeClock } from '@pgwarden/testkit';
import { SMTPServer } from 'smtp-server';
import type { Notification } from '../types.js';
import {
  type DeliveryAttempt,
  type DeliveryResult,
  type Notifier,
  type NotifierConfig,
  createNotifier,
  deliver,
  signStandardWebhook,
  stdoutLine,
  verifyStandardWebhook,
} from './index.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

const T0 = 1_700_000_000_000;

function notification(over: Partial<Notification> = {}): Notification {
  return {
    incidentId: 'inc-42',
    event: 'opened',
    level: 0,
    severity: 'critical',
    database: 'orders',
    title: 'Connections at 97% of max_connections',
    summary: '97 of 100 connections in use; app "checkout" holds 60.',
    dedupKey: 'pgwarden:orders:connections.usage:inc-42',
    url: 'http://127.0.0.1:8080/incidents/inc-42',
    at: T0,
    ...over,
  };
}

interface SlackBlock {
  type: string;
  text: { type: string; text: string };
  fields?: { type: string; text: string }[];
  elements: { type: string; text: string }[];
}
interface SlackBody {
  text: string;
  blocks: SlackBlock[];
}

interface Received {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

interface TestServer {
  url: string;
  requests: Received[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

/** An HTTP server on 127.0.0.1:0 answering each request with `reply(request, index)`. */
async function startHttp(reply: (req: Received, index: number) => Reply): Promise<TestServer> {
  const requests: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received: Received = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(received);
      const r = reply(received, requests.length - 1);
      res.writeHead(r.status, r.headers ?? {});
      res.end(r.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const ts: TestServer = {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(ts);
  return ts;
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** deliver() options that record the waits instead of sleeping. */
function recorded() {
  const sleeps: number[] = [];
  const attempts: DeliveryAttempt[] = [];
  return {
    sleeps,
    attempts,
    options: {
      sleep: async (ms: number) => {
        sleeps.push(ms);
      },
      random: () => 0.5,
      onAttempt: (a: DeliveryAttempt) => attempts.push(a),
    },
  };
}

// assert.ok without a message makes Node re-parse this (TypeScript) source to describe the failure,
// which can spin forever under tsx: every check here carries its own message.
function includes(haystack: string | undefined, needle: string): void {
  assert.ok(
    haystack?.includes(needle),
    `expected ${JSON.stringify(haystack)} to contain ${JSON.stringify(needle)}`,
  );
}
function excludes(haystack: string | undefined, needle: string): void {
  assert.ok(
    !haystack?.includes(needle),
    `expected ${JSON.stringify(haystack)} not to contain ${JSON.stringify(needle)}`,
  );
}

async function waitUntil(cond: () => boolean, what: string, timeoutMillis = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// ---------------------------------------------------------------------------------------------

describe('webhook (Standard Webhooks)', () => {
  const secret = `whsec_${Buffer.from('a 32-byte test secret for hmac!!').toString('base64')}`;

  it('matches the Standard Webhooks reference signature', () => {
    // The example in the Standard Webhooks spec and its reference libraries.
    const sig = signStandardWebhook(
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      1614265330,
      '{"test": 2432232314}',
      'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    );
    assert.equal(sig, 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('signs the body; the signature verifies with the secret only, and only for that body', async () => {
    const server = await startHttp(() => ({ status: 204 }));
    const clock = new FakeClock({ start: T0 + 5_000 });
    const notifier = createNotifier(
      { id: 'hook', kind: 'webhook', url: `${server.url}/hook`, secret },
      { clock },
    );
    const result = await notifier.send(notification());
    assert.deepEqual(result, { ok: true, status: 204 });

    const [req] = server.requests;
    assert.ok(req, 'a request arrived');
    assert.equal(req.method, 'POST');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.match(String(req.headers['webhook-id']), /^msg_[A-Za-z0-9_-]{32}$/);
    assert.equal(req.headers['webhook-timestamp'], String((T0 + 5_000) / 1000));
    assert.match(String(req.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/);

    const body = JSON.parse(req.body);
    assert.equal(body.type, 'pgwarden.incident.opened');
    assert.equal(body.incidentId, 'inc-42');
    assert.equal(body.dedupKey, notification().dedupKey);

    const now = T0 + 5_000;
    assert.equal(verifyStandardWebhook(req.headers, req.body, secret, { now }), true);
    // Independent computation: key = base64-decoded secret, message = "id.timestamp.body".
    const expected = createHmac('sha256', Buffer.from(secret.slice(6), 'base64'))
      .update(`${req.headers['webhook-id']}.${req.headers['webhook-timestamp']}.${req.body}`)
      .digest('base64');
    assert.equal(req.headers['webhook-signature'], `v1,${expected}`);

    const other = `whsec_${Buffer.from('another secret, same length!!!!!').toString('base64')}`;
    assert.equal(verifyStandardWebhook(req.headers, req.body, other, { now }), false);
    assert.equal(
      verifyStandardWebhook(req.headers, req.body.replace('inc-42', 'inc-43'), secret, { now }),
      false,
    );
    // Replay protection: a timestamp ten minutes old is refused by default.
    assert.equal(verifyStandardWebhook(req.headers, req.body, secret, { now: now + 600_000 }), false);
    // fetch-style Headers work too.
    const h = new Headers();
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'])
      h.set(name, String(req.headers[name]));
    assert.equal(verifyStandardWebhook(h, Buffer.from(req.body), secret, { now }), true);
  });

  it('accepts a raw (non-whsec_) secret as UTF-8 bytes', async () => {
    const server = await startHttp(() => ({ status: 200 }));
    const raw = 'plain-shared-secret-value';
    const notifier = createNotifier({ id: 'hook', kind: 'webhook', url: server.url, secret: raw });
    assert.equal((await notifier.send(notification())).ok, true);
    const [req] = server.requests;
    assert.ok(req, 'a request arrived');
    assert.equal(verifyStandardWebhook(req.headers, req.body, raw), true);
    const expected = createHmac('sha256', raw)
      .update(`${req.headers['webhook-id']}.${req.headers['webhook-timestamp']}.${req.body}`)
      .digest('base64');
    assert.equal(req.headers['webhook-signature'], `v1,${expected}`);
  });

  it('keeps the webhook-id across retries and re-signs each attempt; a new message gets a new id', async () => {
    const server = await startHttp((_req, i) => (i < 2 ? { status: 503, body: 'busy' } : { status: 200 }));
    const notifier = createNotifier({ id: 'hook', kind: 'webhook', url: server.url, secret });
    const rec = recorded();
    const result = await deliver(notifier, notification(), { ...rec.options, initialDelayMillis: 100 });
    assert.deepEqual(result, { ok: true, status: 200 });
    assert.equal(server.requests.length, 3);
    const ids = new Set(server.requests.map((r) => r.headers['webhook-id']));
    assert.equal(ids.size, 1, 'one webhook-id for every attempt');
    for (const r of server.requests) assert.equal(verifyStandardWebhook(r.headers, r.body, secret), true);

    assert.deepEqual(
      rec.attempts.map((a) => [a.attempt, a.result.ok, a.result.status]),
      [
        [1, false, 503],
        [2, false, 503],
        [3, true, 200],
      ],
    );
    assert.match(rec.attempts[0]?.result.error ?? '', /HTTP 503: busy/);
    // Exponential backoff with jitter (random fixed at 0.5): 100 → 75, 200 → 150.
    assert.deepEqual(rec.sleeps, [75, 150]);
    assert.deepEqual(
      rec.attempts.map((a) => a.nextDelayMillis),
      [75, 150, undefined],
    );

    await notifier.send(notification({ event: 'resolved', at: T0 + 60_000 }));
    assert.notEqual(server.requests[3]?.headers['webhook-id'], server.requests[0]?.headers['webhook-id']);
  });
});

describe('Slack', () => {
  it('posts Block Kit with every database-sourced text escaped for mrkdwn', async () => {
    const server = await startHttp(() => ({ status: 200, body: 'ok' }));
    const notifier = createNotifier({
      id: 'slack',
      kind: 'slack',
      url: `${server.url}/services/T000/B000/XXXX`,
    });
    const n = notification({
      title: 'Blocked by <script>alert(1)</script> & friends',
      summary: 'query: SELECT 1 WHERE a > b <!channel> <https://evil.example|click>',
      database: 'db<&>',
      incidentId: 'inc-<1>',
    });
    assert.deepEqual(await notifier.send(n), { ok: true, status: 200 });
    const [req] = server.requests;
    assert.ok(req, 'a request arrived');
    assert.equal(req.path, '/services/T000/B000/XXXX');
    const msg = JSON.parse(req.body) as SlackBody;

    const [header, section, context] = msg.blocks;
    assert.ok(header && section && context, 'three blocks');
    assert.equal(header.type, 'header');
    assert.equal(header.text.type, 'plain_text');
    assert.match(header.text.text, /^:rotating_light: CRITICAL: /);
    includes(header.text.text, '&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends');
    assert.ok(header.text.text.length <= 150, 'header within 150 characters');

    assert.equal(section.type, 'section');
    assert.equal(section.text.type, 'mrkdwn');
    assert.equal(
      section.text.text,
      'query: SELECT 1 WHERE a &gt; b &lt;!channel&gt; &lt;https://evil.example|click&gt;',
    );
    const fields = (section.fields ?? []).map((f) => f.text);
    assert.deepEqual(fields, [
      '*Database*\ndb&lt;&amp;&gt;',
      '*Incident*\ninc-&lt;1&gt;',
      '*Level*\n0',
      '*State*\nopen',
    ]);

    assert.equal(context.type, 'context');
    const line = context.elements[0]?.text ?? '';
    assert.match(line, /^pgwarden · opened · <!date\^1700000000\^/);
    assert.match(line, /<http:\/\/127\.0\.0\.1:8080\/incidents\/inc-42\|Open incident>$/);

    includes(msg.text, '&lt;script&gt;');
    assert.match(msg.text, /^:rotating_light: \[CRITICAL\]/);
    // Nothing from the database reaches Slack unescaped.
    excludes(req.body, '<script>');
    excludes(req.body, '<!channel>');
    excludes(req.body, '<https://evil');
  });

  it('a 429 with Retry-After: 2 makes deliver wait 2 s (fake clock) before the next attempt', async () => {
    const server = await startHttp((_req, i) =>
      i === 0
        ? { status: 429, headers: { 'retry-after': '2' }, body: 'rate_limited' }
        : { status: 200, body: 'ok' },
    );
    const notifier = createNotifier({
      id: 'slack',
      kind: 'slack',
      url: `${server.url}/services/T1/B1/sekrit`,
    });
    const clock = new FakeClock({ start: T0 });
    const attempts: DeliveryAttempt[] = [];
    const done = deliver(notifier, notification(), {
      clock,
      random: () => 0.5,
      onAttempt: (a) => attempts.push(a),
    });

    await waitUntil(() => clock.pending() === 1, 'the retry timer');
    assert.equal(server.requests.length, 1);
    assert.equal(
      clock.nextDueAt(),
      T0 + 2000,
      'waits exactly the Retry-After (more than the 500 ms backoff)',
    );
    assert.equal(attempts[0]?.result.status, 429);
    assert.equal(attempts[0]?.result.retryAfterMillis, 2000);
    assert.equal(attempts[0]?.nextDelayMillis, 2000);

    await clock.advanceAsync(1999);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.requests.length, 1, 'no second attempt before 2 s have passed');

    await clock.advanceAsync(1);
    const result = await done;
    assert.deepEqual(result, { ok: true, status: 200 });
    assert.equal(server.requests.length, 2);
    assert.deepEqual(
      attempts.map((a) => [a.attempt, a.at - T0, a.result.ok]),
      [
        [1, 0, false],
        [2, 2000, true],
      ],
    );
  });

  it('marks resolved notifications with a check mark and state resolved', async () => {
    const server = await startHttp(() => ({ status: 200, body: 'ok' }));
    const notifier = createNotifier({ id: 'slack', kind: 'slack', url: server.url });
    await notifier.send(notification({ event: 'resolved', severity: 'warning' }));
    const msg = JSON.parse(server.requests[0]?.body ?? '{}');
    assert.match(msg.blocks[0].text.text, /^:white_check_mark: WARNING: Resolved: /);
    assert.equal(msg.blocks[1].fields[3].text, '*State*\nresolved');
  });
});

describe('PagerDuty Events API v2', () => {
  it('trigger → acknowledge → resolve share one dedup_key; payload only on trigger; severity maps', async () => {
    const server = await startHttp((req) => ({
      status: 202,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        status: 'success',
        message: 'Event processed',
        dedup_key: JSON.parse(req.body).dedup_key,
      }),
    }));
    const routingKey = 'R0UTINGKEY0123456789abcdef012345';
    const notifier = createNotifier({
      id: 'pd',
      kind: 'pagerduty',
      routingKey,
      url: `${server.url}/v2/enqueue`,
    });
    const events: Notification['event'][] = ['opened', 'escalated', 'acknowledged', 'resolved'];
    for (const [i, event] of events.entries()) {
      const r = await notifier.send(
        notification({ event, level: event === 'escalated' ? 1 : 0, at: T0 + i * 1000 }),
      );
      assert.deepEqual(r, { ok: true, status: 202 });
    }
    const bodies = server.requests.map((r) => JSON.parse(r.body));
    assert.deepEqual(
      new Set(server.requests.map((r) => `${r.method} ${r.path}`)),
      new Set(['POST /v2/enqueue']),
    );
    assert.deepEqual(
      bodies.map((b) => b.event_action),
      ['trigger', 'trigger', 'acknowledge', 'resolve'],
    );
    assert.deepEqual(new Set(bodies.map((b) => b.dedup_key)), new Set([notification().dedupKey]));
    assert.deepEqual(new Set(bodies.map((b) => b.routing_key)), new Set([routingKey]));
    assert.equal(bodies[0].payload.severity, 'critical');
    assert.equal(bodies[0].payload.summary, notification().title);
    assert.equal(bodies[0].payload.source, 'pgwarden/orders');
    assert.equal(bodies[0].payload.timestamp, new Date(T0).toISOString());
    assert.equal(bodies[0].payload.custom_details.incident_id, 'inc-42');
    assert.equal(bodies[1].payload.custom_details.level, 1);
    assert.equal(bodies[2].payload, undefined);
    assert.equal(bodies[3].payload, undefined);

    await notifier.send(notification({ severity: 'warning', dedupKey: 'other' }));
    const warning = JSON.parse(server.requests[4]?.body ?? '{}');
    assert.equal(warning.payload.severity, 'warning');
    assert.equal(warning.dedup_key, 'other');
  });

  it('a 400 is not retried', async () => {
    const server = await startHttp(() => ({
      status: 400,
      body: '{"status":"invalid event","message":"Event object is invalid"}',
    }));
    const notifier = createNotifier({
      id: 'pd',
      kind: 'pagerduty',
      routingKey: 'key-abcdef',
      url: server.url,
    });
    const rec = recorded();
    const result = await deliver(notifier, notification(), rec.options);
    assert.equal(result.ok, false);
    assert.equal(result.status, 400);
    assert.match(result.error ?? '', /PagerDuty answered HTTP 400: .*Event object is invalid/);
    assert.equal(server.requests.length, 1);
    assert.equal(rec.attempts.length, 1);
    assert.equal(rec.attempts[0]?.nextDelayMillis, undefined);
    assert.deepEqual(rec.sleeps, []);
  });
});

describe('e-mail (SMTP)', () => {
  interface Mail {
    from: string | undefined;
    to: string[];
    raw: string;
    user: string | undefined;
  }

  async function startSmtp(): Promise<{ port: number; mails: Mail[]; close(): Promise<void> }> {
    const mails: Mail[] = [];
    const smtp = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      logger: false,
      onAuth(auth, _session, callback) {
        if (auth.username === 'alerts' && auth.password === 'smtp-Pa55word!')
          callback(null, { user: auth.username });
        else callback(new Error('Invalid username or password'));
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(chunks).toString('utf8'),
            user: session.user as string | undefined,
          });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    const { port } = (smtp as unknown as { server: { address(): AddressInfo } }).server.address();
    return { port, mails, close: () => new Promise<void>((resolve) => smtp.close(() => resolve())) };
  }

  /** The decoded body of the MIME part with this content type (7bit or quoted-printable). */
  function part(raw: string, type: string): string {
    const start = raw.indexOf(`Content-Type: ${type}`);
    assert.ok(start >= 0, `no ${type} part`);
    const headerEnd = raw.indexOf('\r\n\r\n', start);
    const headers = raw.slice(start, headerEnd);
    const end = raw.indexOf('\r\n--', headerEnd);
    let body = raw.slice(headerEnd + 4, end);
    if (/quoted-printable/i.test(headers)) {
      body = Buffer.from(
        body
          .replace(/=\r\n/g, '')
          .replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
        'latin1',
      ).toString('utf8');
    }
    return body;
  }

  function subjectOf(raw: string): string {
    const headerBlock = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n(?=[ \t])/g, '');
    const line = headerBlock.split('\r\n').find((l) => l.startsWith('Subject: '));
    return line?.slice('Subject: '.length) ?? '';
  }

  it('arrives at the SMTP sink with the subject, a text body and an HTML-escaped HTML body', async () => {
    const sink = await startSmtp();
    try {
      const notifier = createNotifier({
        id: 'mail',
        kind: 'email',
        smtp: {
          host: '127.0.0.1',
          port: sink.port,
          secure: false,
          auth: { user: 'alerts', pass: 'smtp-Pa55word!' },
        },
        from: 'pgwarden <pgwarden@example.com>',
        to: ['dba@example.com', 'oncall@example.com'],
      });
      const n = notification({ title: 'Blocked by <b>evil</b> & co', summary: 'x < y "quoted"' });
      const result = await notifier.send(n);
      assert.equal(result.ok, true, result.error);
      assert.equal(result.status, 250);
      assert.equal(sink.mails.length, 1);
      const [mail] = sink.mails;
      assert.ok(mail, 'a mail arrived');
      assert.equal(mail.user, 'alerts');
      assert.equal(mail.from, 'pgwarden@example.com');
      assert.deepEqual(mail.to, ['dba@example.com', 'oncall@example.com']);
      assert.equal(subjectOf(mail.raw), '[CRITICAL] pgwarden: Blocked by <b>evil</b> & co (incident inc-42)');
      assert.match(mail.raw, /^Message-ID: <[A-Za-z0-9_-]{32}@example\.com>\r$/m);
      assert.match(mail.raw, /^References: <incident-[A-Za-z0-9_-]+@example\.com>\r$/m);

      const text = part(mail.raw, 'text/plain');
      includes(text, 'Blocked by <b>evil</b> & co');
      includes(text, 'x < y "quoted"');
      assert.match(text, /Database: +orders/);
      assert.match(text, /Incident: +inc-42/);

      const html = part(mail.raw, 'text/html');
      includes(html, 'Blocked by &lt;b&gt;evil&lt;/b&gt; &amp; co');
      includes(html, 'x &lt; y &quot;quoted&quot;');
      excludes(html, '<b>evil');
      includes(html, '<a href="http://127.0.0.1:8080/incidents/inc-42">');
    } finally {
      await sink.close();
    }
  });

  it('a refused login is not retried, and the password is not in the error', async () => {
    const sink = await startSmtp();
    try {
      const notifier = createNotifier({
        id: 'mail',
        kind: 'email',
        smtp: { host: '127.0.0.1', port: sink.port, user: 'alerts', password: 'wrong-Pa55word!' },
        from: 'pgwarden@example.com',
        to: ['dba@example.com'],
      });
      const rec = recorded();
      const result = await deliver(notifier, notification(), rec.options);
      assert.equal(result.ok, false);
      assert.equal(result.retryable, false);
      assert.match(result.error ?? '', /EAUTH/);
      excludes(result.error ?? '', 'wrong-Pa55word!');
      assert.equal(rec.attempts.length, 1);
      assert.equal(sink.mails.length, 0);
    } finally {
      await sink.close();
    }
  });
});

describe('stdout', () => {
  it('writes one terminal-safe line per notification', async () => {
    const lines: string[] = [];
    const stream = {
      write(chunk: string, cb?: (err?: Error | null) => void) {
        lines.push(chunk);
        cb?.();
        return true;
      },
    };
    const notifier = createNotifier({ id: 'out', kind: 'stdout' }, { stdout: stream });
    const n = notification({ title: 'evil\x1b[2J title\nsecond line', database: 'db\rx' });
    assert.deepEqual(await notifier.send(n), { ok: true });
    assert.equal(lines.length, 1);
    const line = lines[0] ?? '';
    assert.equal(line.indexOf('\n'), line.length - 1, 'exactly one line, ending in a newline');
    excludes(line, '\x1b');
    includes(line, 'evil\\x1b[2J title second line');
    includes(
      line,
      '2023-11-14T22:13:20.000Z pgwarden CRITICAL incident inc-42 opened (state open, level 0) database=db\\rx:',
    );

    const json = stdoutLine(n, 'json');
    assert.equal(json.indexOf('\n'), json.length - 1);
    assert.equal(JSON.parse(json).type, 'pgwarden.incident.opened');
  });
});

describe('deliver', () => {
  const fake = (results: DeliveryResult[]): Notifier & { calls: number } => ({
    id: 'fake',
    kind: 'webhook',
    calls: 0,
    async send() {
      const r = results[Math.min(this.calls, results.length - 1)] as DeliveryResult;
      this.calls++;
      return r;
    },
  });

  it('retries network errors and 5xx up to maxAttempts with capped exponential backoff', async () => {
    const notifier = fake([{ ok: false, error: 'network' }]);
    const rec = recorded();
    const result = await deliver(notifier, notification(), {
      ...rec.options,
      maxAttempts: 6,
      initialDelayMillis: 1000,
      maxDelayMillis: 5000,
    });
    assert.deepEqual(result, { ok: false, error: 'network' });
    assert.equal(notifier.calls, 6);
    assert.equal(rec.attempts.length, 6);
    // 1000, 2000, 4000, 5000 (cap), 5000, each 75% with random 0.5.
    assert.deepEqual(rec.sleeps, [750, 1500, 3000, 3750, 3750]);
  });

  it('jitter stays within [half, full] of the backoff', async () => {
    for (const random of [0, 0.999999]) {
      const rec = recorded();
      await deliver(fake([{ ok: false, status: 502 }]), notification(), {
        ...rec.options,
        random: () => random,
        maxAttempts: 3,
        initialDelayMillis: 400,
      });
      assert.deepEqual(rec.sleeps, random === 0 ? [200, 400] : [400, 800]);
    }
  });

  it('does not retry 4xx other than 429, nor results marked not retryable', async () => {
    for (const r of [
      { ok: false, status: 404 },
      { ok: false, status: 410 },
      { ok: false, error: 'x', retryable: false },
    ]) {
      const notifier = fake([r]);
      await deliver(notifier, notification(), recorded().options);
      assert.equal(notifier.calls, 1, JSON.stringify(r));
    }
    const limited = fake([
      { ok: false, status: 429 },
      { ok: true, status: 200 },
    ]);
    assert.equal((await deliver(limited, notification(), recorded().options)).ok, true);
    assert.equal(limited.calls, 2);
  });

  it('gives up on a Retry-After longer than maxRetryAfterMillis, returning it to the caller', async () => {
    const notifier = fake([{ ok: false, status: 429, retryAfterMillis: 3_600_000 }]);
    const rec = recorded();
    const result = await deliver(notifier, notification(), rec.options);
    assert.equal(result.retryAfterMillis, 3_600_000);
    assert.equal(notifier.calls, 1);
  });

  it('turns a throwing notifier into a failed attempt, survives a throwing onAttempt, stops on abort', async () => {
    let calls = 0;
    const throwing: Notifier = {
      id: 't',
      kind: 'stdout',
      async send() {
        calls++;
        throw new Error('boom');
      },
    };
    const result = await deliver(throwing, notification(), {
      sleep: async () => {},
      maxAttempts: 2,
      onAttempt: () => {
        throw new Error('logger down');
      },
    });
    assert.deepEqual(result, { ok: false, error: 'stdout: boom' });
    assert.equal(calls, 2);

    const controller = new AbortController();
    const notifier = fake([{ ok: false, status: 500 }]);
    const clock = new FakeClock({ start: T0 });
    const done = deliver(notifier, notification(), { clock, signal: controller.signal });
    await waitUntil(() => clock.pending() === 1, 'the retry timer');
    controller.abort();
    const r = await done;
    assert.equal(r.status, 500);
    assert.equal(notifier.calls, 1);
    assert.equal(clock.pending(), 0, 'the timer was cleared');
  });
});

describe('secrets', () => {
  const slackPath = '/services/T0SECRET/B0SECRET/xoxSlackSecretToken123';
  const webhookSecret = 'whsec_c2VjcmV0LXdlYmhvb2sta2V5LWJ5dGVzLTEyMzQ1Ng==';
  const routingKey = 'PDroutingKeySecret0123456789abcd';
  const smtpPass = 'smtp-Secret-Pa55';
  const secrets = [
    slackPath,
    'xoxSlackSecretToken123',
    webhookSecret,
    routingKey,
    smtpPass,
    'webhookQueryToken',
  ];

  function assertClean(text: string, where: string) {
    for (const s of secrets) assert.ok(!text.includes(s), `${where} contains a secret: ${text}`);
  }

  async function configs(port: number): Promise<NotifierConfig[]> {
    return [
      {
        id: 'hook',
        kind: 'webhook',
        url: `http://127.0.0.1:${port}/hook?token=webhookQueryToken`,
        secret: webhookSecret,
      },
      { id: 'slack', kind: 'slack', url: `http://127.0.0.1:${port}${slackPath}` },
      { id: 'pd', kind: 'pagerduty', routingKey, url: `http://127.0.0.1:${port}/v2/enqueue` },
      {
        id: 'mail',
        kind: 'email',
        smtp: { host: '127.0.0.1', port, auth: { user: 'alerts', pass: smtpPass }, ignoreTLS: true },
        from: 'pgwarden@example.com',
        to: ['dba@example.com'],
        timeoutMillis: 2000,
      },
    ];
  }

  it('no secret in any error when delivering to a closed port', async () => {
    const port = await closedPort();
    for (const config of await configs(port)) {
      const notifier = createNotifier(config);
      const rec = recorded();
      const result = await deliver(notifier, notification(), { ...rec.options, maxAttempts: 2 });
      assert.equal(result.ok, false, config.id);
      assert.match(result.error ?? '', /ECONNREFUSED/, `${config.id}: ${result.error}`);
      assert.equal(rec.attempts.length, 2, `${config.id}: a refused connection is retried`);
      for (const a of rec.attempts) assertClean(a.result.error ?? '', `${config.id} attempt ${a.attempt}`);
      assertClean(result.error ?? '', config.id);
      assertClean(JSON.stringify(notifier), `JSON of ${config.id}`);
      assertClean(inspect(notifier, { depth: 10, showHidden: true }), `inspect of ${config.id}`);
      assertClean(notifier.target ?? '', `target of ${config.id}`);
    }
  });

  it('no secret in an error that quotes a response echoing the request', async () => {
    const server = await startHttp((req) => ({ status: 500, body: `cannot handle ${req.path} ${req.body}` }));
    const port = Number(new URL(server.url).port);
    for (const config of (await configs(port)).filter((c) => c.kind !== 'email')) {
      const result = await createNotifier(config).send(notification());
      assert.equal(result.status, 500);
      assert.match(result.error ?? '', /\[redacted\]/, `${config.id}: ${result.error}`);
      assertClean(result.error ?? '', config.id);
    }
  });

  it('no secret in configuration errors, which name the bad field', () => {
    const bad: Array<[unknown, RegExp]> = [
      [
        { id: 'slack', kind: 'slack', url: `not a url ${slackPath}` },
        /notifier "slack": "url" is not a valid URL/,
      ],
      [{ id: 'slack', kind: 'slack', url: `ftp://host${slackPath}` }, /"url" must be an http\(s\) URL/],
      [
        { id: 'hook', kind: 'webhook', url: 'https://example.com/x' },
        /notifier "hook": "secret" must be a non-empty string/,
      ],
      [
        { id: 'hook', kind: 'webhook', url: 'https://example.com/x', secret: 'whsec_!!notbase64!!' },
        /"secret" is not usable/,
      ],
      [{ id: 'pd', kind: 'pagerduty', routingKey: '' }, /"routingKey" must be a non-empty string/],
      [{ id: 'pd', kind: 'pagerduty', routingKey, url: 'nope' }, /"url" is not a valid URL/],
      [
        { id: 'm', kind: 'email', smtp: { host: 'h', port: 0 }, from: 'a@b.c', to: ['d@e.f'] },
        /"smtp\.port" must be an integer/,
      ],
      [
        { id: 'm', kind: 'email', smtp: { host: 'h', auth: { user: 'u' } }, from: 'a@b.c', to: ['d@e.f'] },
        /"smtp\.auth\.pass"/,
      ],
      [
        { id: 'm', kind: 'email', smtp: { host: 'h', user: 'u' }, from: 'a@b.c', to: ['d@e.f'] },
        /"smtp\.password"/,
      ],
      [{ id: 'm', kind: 'email', smtp: { host: '' }, from: 'a@b.c', to: ['d@e.f'] }, /"smtp\.host"/],
      [
        { id: 'm', kind: 'email', smtp: { host: 'h' }, from: 'a@b.c', to: [] },
        /"to" must be a non-empty list/,
      ],
      [
        { id: 'm', kind: 'email', smtp: { host: 'h' }, from: 'a@b.c', to: ['ok@x.y', 'bad\n@x'] },
        /"to\[1\]"/,
      ],
      [
        { id: 'm', kind: 'email', smtp: { host: 'h' }, from: 'nobody', to: ['d@e.f'] },
        /"from" must be an e-mail address/,
      ],
      [{ id: 's', kind: 'stdout', format: 'xml' }, /"format" must be "text" or "json"/],
      [
        { id: 'x', kind: 'sms' },
        /notifier "x": "kind" must be one of webhook, slack, email, pagerduty, stdout/,
      ],
      [{ id: '', kind: 'stdout' }, /"id" must be a non-empty string/],
      [{ id: 'h', kind: 'slack', url: 'https://hooks.slack.com/x', timeoutMillis: -1 }, /"timeoutMillis"/],
    ];
    for (const [config, message] of bad) {
      assert.throws(
        () => createNotifier(config as NotifierConfig),
        (err: Error) => {
          assert.match(err.message, message);
          assertClean(err.message, 'config error');
          return true;
        },
      );
    }
    const slack = createNotifier({ id: 'slack', kind: 'slack', url: `https://hooks.slack.com${slackPath}` });
    assert.equal(slack.target, 'https://hooks.slack.com/[redacted]');
  });
});
