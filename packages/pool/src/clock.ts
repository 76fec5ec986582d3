/**
 * Time as the pool sees it. Every timer and timestamp in the pool goes through a Clock, so tests can
 * drive hours of pool life on a fake clock without sleeping.
 */
export interface TimerHandle {
  /** Lets the process exit while this timer is pending (Node's `Timeout.unref`). */
  unref?(): unknown;
  ref?(): unknown;
}

export interface Clock {
  /** Milliseconds since the epoch, fractional where the platform allows. */
  now(): number;
  setTimeout(callback: () => void, delayMillis: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

// The imported binding: reading the `performance` global goes through a lazy getter every time.
const origin = performance.timeOrigin;

/** The real clock: wall time with sub-millisecond resolution, Node's timers. */
export const systemClock: Clock = {
  now: () => origin + performance.now(),
  setTimeout: (callback, delayMillis) => setTimeout(callback, delayMillis),
  clearTimeout: (handle) => {
    if (handle !== undefined) clearTimeout(handle as NodeJS.Timeout);
  },
};
