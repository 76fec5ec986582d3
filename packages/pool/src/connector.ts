/**
 * Making one connection: a single deadline per attempt that covers DNS, TCP and authentication
 * (node-postgres#3197 hangs forever on a DNS stall), retry with exponential backoff and jitter of
 * transient failures, and a circuit breaker that makes callers fail fast while the server is down.
 */
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  type IPolicy,
  circuitBreaker,
  handleWhen,
  noop,
  retry,
  wrap,
} from 'cockatiel';
import type { Clock } from './clock.js';
import { CircuitOpenError, ConnectTimeoutError } from './errors.js';
import type { ResolvedSettings } from './options.js';
import type { PooledClient } from './slot.js';
import { countsAgainstBreaker, isTransientConnectError } from './transient.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export class Connector {
  private readonly policy: IPolicy;
  private readonly breaker: ReturnType<typeof circuitBreaker> | undefined;

  constructor(
    private readonly settings: ResolvedSettings,
    private readonly makeClient: () => PooledClient,
    private readonly clock: Clock,
    private readonly log: (...messages: unknown[]) => void,
  ) {
    // The breaker sits outside the retry: one caller's whole retry sequence is one failure, so a
    // single unlucky caller cannot open it for everyone.
    const policies: IPolicy[] = [];
    if (settings.circuitBreaker) {
      this.breaker = circuitBreaker(handleWhen(countsAgainstBreaker), {
        halfOpenAfter: settings.circuitBreaker.halfOpenAfterMillis,
        breaker: new ConsecutiveBreaker(settings.circuitBreaker.threshold),
      });
      this.breaker.onStateChange((state) => this.log(`circuit breaker ${describeState(state)}`));
      policies.push(this.breaker);
    }
    if (settings.retry && settings.retry.maxAttempts > 1) {
      policies.push(
        retry(handleWhen(isTransientConnectError), {
          maxAttempts: settings.retry.maxAttempts - 1,
          backoff: new ExponentialBackoff({
            initialDelay: settings.retry.initialDelayMillis,
            maxDelay: settings.retry.maxDelayMillis,
          }),
        }),
      );
    }
    this.policy = policies.length === 0 ? noop : (wrap(...policies) as IPolicy);
  }

  get breakerState(): BreakerState {
    return this.breaker ? describeState(this.breaker.state) : 'closed';
  }

  /**
   * Establishes a connection. `track` is told about every Client instance made, so the pool can
   * count it while it connects (pg-pool's `totalCount` includes connecting clients).
   */
  async connect(track: (client: PooledClient) => void): Promise<PooledClient> {
    try {
      return await this.policy.execute(() => {
        const client = this.makeClient();
        track(client);
        return this.attempt(client);
      });
    } catch (error) {
      if (error instanceof BrokenCircuitError) throw new CircuitOpenError(error);
      throw error;
    }
  }

  private attempt(client: PooledClient): Promise<PooledClient> {
    const timeoutMillis = this.settings.connectionTimeoutMillis;
    return new Promise<PooledClient>((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | undefined) => {
        if (settled) {
          // The driver answered after the deadline: the attempt was abandoned, close what it made.
          if (!error) safeEnd(client);
          return;
        }
        settled = true;
        this.clock.clearTimeout(timer);
        if (error) reject(error);
        else resolve(client);
      };
      const giveUp = (error: Error) => {
        if (settled) return;
        // pg-native reports isConnected() once the server accepted it: like pg-pool, let it finish.
        if (isNativeConnected(client)) return;
        abortClient(client);
        finish(error);
      };
      const timer =
        timeoutMillis > 0
          ? this.clock.setTimeout(() => giveUp(new ConnectTimeoutError(timeoutMillis)), timeoutMillis)
          : undefined;
      timer?.unref?.();
      try {
        const maybePromise = client.connect((err?: Error) => finish(err ?? undefined));
        // Clients whose connect() only returns a promise (and ignores the callback).
        if (maybePromise && typeof maybePromise.then === 'function' && client.connect.length === 0) {
          maybePromise.then(
            () => finish(undefined),
            (err: Error) => finish(err),
          );
        }
      } catch (error) {
        finish(error as Error);
      }
    });
  }
}

function describeState(state: CircuitState): BreakerState {
  if (state === CircuitState.Open || state === CircuitState.Isolated) return 'open';
  if (state === CircuitState.HalfOpen) return 'half-open';
  return 'closed';
}

/** Tears down a connection attempt whatever stage it is in, DNS lookup included. */
export function abortClient(client: PooledClient): void {
  try {
    client.connection?.stream?.destroy?.();
  } catch {
    // already gone
  }
  safeEnd(client);
}

export function safeEnd(client: PooledClient, callback?: () => void): void {
  try {
    const result = client.end(callback);
    if (result && typeof result.catch === 'function') result.catch(() => undefined);
  } catch {
    callback?.();
  }
}

/** pg-native's client (no `connection` object) that says it is connected: its connect is nearly done. */
export function isNativeConnected(client: PooledClient): boolean {
  return (
    client.connection === undefined &&
    typeof client.isConnected === 'function' &&
    client.isConnected() === true
  );
}
