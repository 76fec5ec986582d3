/**
 * A ready request handler for Node's http server (and anything with the same req/res shape, such
 * as Express or Fastify's raw objects): `GET /pgwarden/pools` returns every pool's `inspect()`,
 * `GET /metrics` the Prometheus text. pgwarden's agent reads the first to name the code site that
 * holds a backend pid.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Pool } from './pool.js';

export interface PoolHandlerOptions {
  pools: Pool[] | (() => Pool[]);
  /** Registry whose metrics `GET /metrics` serves (omit to not serve metrics). */
  registry?: Registry;
  /** When set, requests must carry `Authorization: Bearer <token>` (query text can be sensitive). */
  token?: string;
  /** Path of the inspect endpoint (default `/pgwarden/pools`). */
  inspectPath?: string;
  /** Path of the metrics endpoint (default `/metrics`). */
  metricsPath?: string;
}

export type PoolRequestHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const header = req.headers.authorization ?? '';
  const expected = Buffer.from(`Bearer ${token}`);
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(body);
}

/**
 * Returns a handler that answers the requests it knows and returns `true`, or returns `false` and
 * leaves the response untouched for the application's own routes.
 */
export function createPoolHandler(options: PoolHandlerOptions): PoolRequestHandler {
  const inspectPath = options.inspectPath ?? '/pgwarden/pools';
  const metricsPath = options.metricsPath ?? '/metrics';
  const pools = typeof options.pools === 'function' ? options.pools : () => options.pools as Pool[];
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== inspectPath && !(options.registry && path === metricsPath)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return true;
    }
    if (!authorized(req, options.token)) {
      send(res, 401, 'text/plain; charset=utf-8', 'a bearer token is required\n');
      return true;
    }
    if (path === inspectPath) {
      const body = JSON.stringify({ pid: process.pid, pools: pools().map((p) => p.inspect()) });
      send(res, 200, 'application/json; charset=utf-8', body);
      return true;
    }
    const registry = options.registry as Registry;
    registry.metrics().then(
      (text) => send(res, 200, registry.contentType, text),
      (err: Error) => send(res, 500, 'text/plain; charset=utf-8', `metrics failed: ${err.message}\n`),
    );
    return true;
  };
}
