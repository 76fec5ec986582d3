/**
 * The demo's traffic: bedside monitors posting vital signs to VitalStream at a steady rate, and
 * ward screens reading them. Every request has a deadline; each outcome is kept (a few minutes'
 * worth) so the demo can say when the service's error rate went back to 0.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { PATIENTS } from './vitalstream.js';

export interface Outcome {
  startedAt: number;
  endedAt: number;
  ok: boolean;
  status: number;
  /** Failed, or slower than the SLO: what a user would call an error. */
  degraded: boolean;
}

export interface LoadOptions {
  baseUrl: string;
  /** Monitors posting one reading every `intervalMillis` each (default 20 every 500 ms: 40/s). */
  monitors?: number;
  intervalMillis?: number;
  /** Ward screens reading a patient's latest vitals once a second (default 4). */
  screens?: number;
  /** A request slower than this counts as degraded (default 1000 ms). */
  sloMillis?: number;
  /** Each request's own deadline (default 8000 ms). */
  deadlineMillis?: number;
  now?: () => number;
}

export interface LoadWindow {
  requests: number;
  errors: number;
  degraded: number;
  perSecond: number;
  p95Millis: number;
}

export class LoadGenerator {
  private readonly outcomes: Outcome[] = [];
  private running = false;
  private workers: Promise<void>[] = [];
  private readonly sloMillis: number;
  private readonly deadlineMillis: number;
  private readonly now: () => number;
  private readonly controller = new AbortController();
  private readonly inFlight = new Map<number, number>();
  private nextId = 0;

  constructor(private readonly options: LoadOptions) {
    this.sloMillis = options.sloMillis ?? 1000;
    this.deadlineMillis = options.deadlineMillis ?? 8000;
    this.now = options.now ?? Date.now;
    // Every request in flight listens for the stop (and removes its listener when it ends).
    setMaxListeners(0, this.controller.signal);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const monitors = this.options.monitors ?? 20;
    const interval = this.options.intervalMillis ?? 500;
    for (let m = 0; m < monitors; m++) {
      const patient = (m % PATIENTS) + 1;
      this.workers.push(this.loop(interval, m * (interval / monitors), () => this.postVital(patient)));
    }
    for (let s = 0; s < (this.options.screens ?? 4); s++) {
      this.workers.push(this.loop(1000, s * 250, () => this.readVitals(1 + ((s * 7) % PATIENTS))));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.controller.abort();
    await Promise.allSettled(this.workers);
    this.workers = [];
  }

  /**
   * A traffic spike: `clients` extra callers posting back to back for `millis` (a flash crowd of
   * monitors reconnecting at once). Resolves when it is over.
   */
  async spike(clients: number, millis: number): Promise<void> {
    const until = this.now() + millis;
    await Promise.all(
      Array.from({ length: clients }, async (_, i) => {
        while (this.running && this.now() < until) await this.postVital((i % PATIENTS) + 1);
      }),
    );
  }

  /** Outcomes of requests that ended at or after `since`. */
  since(since: number): Outcome[] {
    return this.outcomes.filter((o) => o.endedAt >= since);
  }

  /** The last `millis` of traffic. */
  window(millis: number): LoadWindow {
    const from = this.now() - millis;
    const recent = this.since(from);
    const latencies = recent.map((o) => o.endedAt - o.startedAt).sort((a, b) => a - b);
    return {
      requests: recent.length,
      errors: recent.filter((o) => !o.ok).length,
      degraded: recent.filter((o) => o.degraded).length,
      perSecond: recent.length / (millis / 1000),
      p95Millis: latencies[Math.floor(latencies.length * 0.95)] ?? 0,
    };
  }

  /** Whether a request in flight has already run past the SLO (it will end degraded). */
  slowInFlight(): boolean {
    const now = this.now();
    for (const startedAt of this.inFlight.values()) if (now - startedAt > this.sloMillis) return true;
    return false;
  }

  /** When the last degraded request ended, at or after `since` (undefined: none). */
  lastDegradedAt(since: number): number | undefined {
    let last: number | undefined;
    for (const o of this.outcomes) {
      if (o.endedAt >= since && o.degraded && (last === undefined || o.endedAt > last)) last = o.endedAt;
    }
    return last;
  }

  private async loop(interval: number, offset: number, send: () => Promise<void>): Promise<void> {
    await sleep(offset, undefined, { signal: this.controller.signal }).catch(() => undefined);
    let next = this.now();
    while (this.running) {
      // Fire and keep the rhythm: a slow answer does not slow the monitor down (as in production).
      void send();
      next += interval;
      const wait = next - this.now();
      if (wait > 0) await sleep(wait, undefined, { signal: this.controller.signal }).catch(() => undefined);
      else next = this.now();
    }
  }

  private postVital(patient: number): Promise<void> {
    return this.request(`/api/vitals`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        patientId: patient,
        heartRate: 60 + Math.floor(Math.random() * 40),
        spo2: 94 + Math.floor(Math.random() * 6),
      }),
    });
  }

  private readVitals(patient: number): Promise<void> {
    return this.request(`/api/patients/${patient}/vitals`, { method: 'GET' });
  }

  private async request(path: string, init: RequestInit): Promise<void> {
    const startedAt = this.now();
    const id = this.nextId++;
    this.inFlight.set(id, startedAt);
    // One controller per request, for its deadline and for the stop (its listener is removed after).
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), this.deadlineMillis);
    const onStop = () => abort.abort();
    this.controller.signal.addEventListener('abort', onStop, { once: true });
    let status = 0;
    try {
      const res = await fetch(`${this.options.baseUrl}${path}`, { ...init, signal: abort.signal });
      status = res.status;
      await res.arrayBuffer();
    } catch {
      status = 0;
    } finally {
      clearTimeout(deadline);
      this.controller.signal.removeEventListener('abort', onStop);
      this.inFlight.delete(id);
    }
    if (this.controller.signal.aborted) return;
    const endedAt = this.now();
    const ok = status >= 200 && status < 300;
    this.outcomes.push({
      startedAt,
      endedAt,
      ok,
      status,
      degraded: !ok || endedAt - startedAt > this.sloMillis,
    });
    // Keep five minutes.
    if (this.outcomes.length > 50_000 || (this.outcomes[0] && this.outcomes[0].endedAt < endedAt - 300_000)) {
      const cut = this.outcomes.findIndex((o) => o.endedAt >= endedAt - 300_000);
      this.outcomes.splice(
        0,
        cut === -1 ? this.outcomes.length : Math.max(cut, this.outcomes.length - 50_000),
      );
    }
  }
}
