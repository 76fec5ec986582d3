/**
 * VitalStream: the small service `npm start` runs. Bedside monitors post vital signs to an HTTP API
 * that writes them through @pgwarden/pool; the API also has the four bugs behind most exhausted
 * pools, each reachable by an ordinary request (the demo's scenarios send them):
 *
 * - `GET /api/patients/:id/export?format=…` forgets to release its connection on an error path
 *   (a leak: the connection stays checked out, idle in transaction);
 * - `GET /api/reports/monthly` turns the statement timeout off for a slow aggregate (long queries);
 * - `POST /api/patients/:id/reassign` locks the patient's row, then waits on the ward system
 *   (a lock chain: every write for that patient queues behind it);
 * - `POST /api/imports` opens a transaction, then waits on a partner's API (idle in transaction).
 *
 * The pool's inspect endpoint (`/pgwarden/pools`, token-guarded) tells pgwarden's agent which code
 * site holds each backend.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, createPoolHandler, isPoolError } from '@pgwarden/pool';
import { Registry } from 'prom-client';

export interface VitalStreamOptions {
  databaseUrl: string;
  /** Bearer token of the pool's inspect and metrics endpoints. */
  token: string;
  /** How long the "external" calls of the buggy paths hang (ms); default 60 s. */
  externalCallMillis?: number;
  log?: (line: string) => void;
}

/** The pool's settings: a small API pool, tight deadlines, leak detection with every site recorded. */
export const VITALS_POOL = {
  name: 'vitals-api',
  service: 'vitalstream',
  max: 10,
  maxOverflow: 2,
  min: 2,
  connectionTimeoutMillis: 2000,
  statementTimeoutMillis: 5000,
  idleInTransactionTimeoutMillis: 120_000,
  leakDetectionThresholdMillis: 2000,
  captureSites: 'always' as const,
};

export const PATIENTS = 40;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class VitalStream {
  readonly pool: Pool;
  readonly registry = new Registry();
  private server: Server | undefined;
  private readonly stopping = new AbortController();
  private readonly externalMillis: number;
  private readonly log: (line: string) => void;
  url = '';

  constructor(private readonly options: VitalStreamOptions) {
    this.externalMillis = options.externalCallMillis ?? 60_000;
    this.log = options.log ?? (() => {});
    // Every hung external call listens for the service's stop.
    setMaxListeners(0, this.stopping.signal);
    this.pool = new Pool({
      connectionString: options.databaseUrl,
      ...VITALS_POOL,
      metrics: { registry: this.registry, environment: 'demo' },
      env: {},
    });
    // The agent reads leaks through inspect(); the service only notes them.
    this.pool.on('leak', (leak) =>
      this.log(`vitals-api: leak suspected, pid ${leak.pid} taken at ${leak.site}`),
    );
    this.pool.on('leakReturned', () => {});
    this.pool.on('leakReclaimed', (leak) =>
      this.log(`vitals-api: pid ${leak.pid} was ended by the server; the pool took its slot back`),
    );
    this.pool.on('error', () => {});
  }

  /** Creates the schema and the patients, then listens on 127.0.0.1. */
  async start(): Promise<void> {
    await this.pool.query(`
      CREATE TABLE IF NOT EXISTS patients (
        id int PRIMARY KEY,
        name text NOT NULL,
        ward text NOT NULL,
        last_vital_at timestamptz
      );
      CREATE TABLE IF NOT EXISTS vitals (
        id bigserial PRIMARY KEY,
        patient_id int NOT NULL REFERENCES patients (id),
        heart_rate int NOT NULL,
        spo2 int NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS vitals_patient_recorded ON vitals (patient_id, recorded_at);
      CREATE TABLE IF NOT EXISTS imports (
        id bigserial PRIMARY KEY,
        source text NOT NULL,
        rows int NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await this.pool.query(
      `INSERT INTO patients (id, name, ward)
       SELECT i, 'Patient ' || i, (ARRAY['ICU', 'Cardiology', 'Recovery'])[1 + i % 3]
       FROM generate_series(1, $1::int) AS i
       ON CONFLICT (id) DO NOTHING`,
      [PATIENTS],
    );
    const inspect = createPoolHandler({
      pools: [this.pool],
      registry: this.registry,
      token: this.options.token,
    });
    this.server = createServer((req, res) => {
      if (inspect(req, res)) return;
      this.route(req, res).catch((err: Error) => reply(res, 500, { error: err.message }));
    });
    this.server.keepAliveTimeout = 10_000;
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get poolsUrl(): string {
    return `${this.url}/pgwarden/pools`;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    // Leaked connections are never returned: do not wait for them longer than a moment.
    await Promise.race([this.pool.end(), sleep(1000)]);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    try {
      if (req.method === 'POST' && url.pathname === '/api/vitals') {
        const body = await readJson(req);
        await this.ingestVital(body);
        return reply(res, 201, { ok: true });
      }
      if (req.method === 'GET' && parts[0] === 'api' && parts[1] === 'patients' && parts[3] === 'vitals') {
        return reply(res, 200, await this.latestVitals(patientId(parts[2])));
      }
      if (req.method === 'GET' && parts[0] === 'api' && parts[1] === 'patients' && parts[3] === 'export') {
        return reply(
          res,
          200,
          await this.exportPatientHistory(patientId(parts[2]), url.searchParams.get('format')),
        );
      }
      if (req.method === 'GET' && url.pathname === '/api/reports/monthly') {
        return reply(res, 200, await this.monthlyReport());
      }
      if (req.method === 'POST' && parts[0] === 'api' && parts[1] === 'patients' && parts[3] === 'reassign') {
        const body = await readJson(req);
        return reply(res, 200, await this.reassignPatient(patientId(parts[2]), String(body.ward ?? 'ICU')));
      }
      if (req.method === 'POST' && url.pathname === '/api/imports') {
        return reply(res, 202, await this.importBatch());
      }
      if (req.method === 'GET' && url.pathname === '/healthz') return reply(res, 200, { ok: true });
      return reply(res, 404, { error: `no route ${req.method} ${url.pathname}` });
    } catch (err) {
      if (err instanceof HttpError) return reply(res, err.status, { error: err.message });
      // The pool's own errors (timeout, queue full, open breaker) mean "try later": 503.
      const e = err as Error & { code?: string };
      return reply(res, isPoolError(err) ? 503 : 500, { error: e.message, code: e.code });
    }
  }

  /** The hot path: one vital sign, written with the patient's last-seen time in one transaction. */
  async ingestVital(body: Record<string, unknown>): Promise<void> {
    const id = patientId(body.patientId);
    const heartRate = Number(body.heartRate);
    const spo2 = Number(body.spo2);
    if (!Number.isInteger(heartRate) || !Number.isInteger(spo2))
      throw new HttpError(400, 'heartRate and spo2 must be integers');
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO vitals (patient_id, heart_rate, spo2) VALUES ($1, $2, $3)', [
        id,
        heartRate,
        spo2,
      ]);
      await client.query('UPDATE patients SET last_vital_at = now() WHERE id = $1', [id]);
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
  }

  async latestVitals(id: number): Promise<unknown[]> {
    const { rows } = await this.pool.query(
      'SELECT heart_rate, spo2, recorded_at FROM vitals WHERE patient_id = $1 ORDER BY recorded_at DESC LIMIT 10',
      [id],
    );
    return rows;
  }

  /** BUG (leak): the unsupported-format error path returns without releasing the connection. */
  async exportPatientHistory(id: number, format: string | null): Promise<unknown> {
    const client = await this.pool.connect();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const { rows } = await client.query('SELECT count(*)::int AS n FROM vitals WHERE patient_id = $1', [id]);
    if (format !== null && format !== 'json') {
      throw new HttpError(400, `unsupported export format ${JSON.stringify(format)}`);
    }
    await client.query('COMMIT');
    client.release();
    return { patientId: id, vitals: rows[0]?.n ?? 0 };
  }

  /** BUG (long query): the report turns the statement timeout off for its slow aggregate. */
  async monthlyReport(): Promise<unknown> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL statement_timeout = 0');
      // Stands in for the full scan of a month of vitals: 60 s on a large table.
      const { rows } = await client.query(
        'SELECT count(*)::int AS readings, avg(heart_rate)::int AS heart_rate, pg_sleep($1) IS NULL AS done FROM vitals',
        [this.externalMillis / 1000],
      );
      await client.query('COMMIT');
      client.release();
      return rows[0];
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
  }

  /** BUG (lock chain): holds the patient's row lock while it waits for the ward system. */
  async reassignPatient(id: number, ward: string): Promise<unknown> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT id FROM patients WHERE id = $1 FOR UPDATE', [id]);
      await this.callExternalSystem('ward system');
      await client.query('UPDATE patients SET ward = $2 WHERE id = $1', [id, ward]);
      await client.query('COMMIT');
      client.release();
      return { patientId: id, ward };
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
  }

  /** BUG (idle in transaction): opens the transaction before it fetches the partner's page. */
  async importBatch(): Promise<unknown> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(
        "INSERT INTO imports (source, rows) VALUES ('partner-lab', 0) RETURNING id",
      );
      await this.callExternalSystem('partner lab API');
      await client.query('UPDATE imports SET rows = 100 WHERE id = $1', [rows[0]?.id]);
      await client.query('COMMIT');
      client.release();
      return { importId: rows[0]?.id };
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
  }

  /** An external call that does not answer (until the service stops). */
  private async callExternalSystem(_name: string): Promise<void> {
    await sleep(this.externalMillis, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }
}

function patientId(value: unknown): number {
  const id = Number(value);
  if (!Number.isInteger(id) || id < 1 || id > PATIENTS) {
    throw new HttpError(400, `patient id must be an integer from 1 to ${PATIENTS}`);
  }
  return id;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 65_536) throw new HttpError(413, 'request body over 64 KiB');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'the body must be a JSON object');
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}
