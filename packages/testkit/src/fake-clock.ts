/**
 * A manually driven clock. Structurally compatible with the pool's `Clock` (now / setTimeout /
 * clearTimeout), so a test can run hours of pool life without sleeping.
 */

export const DEFAULT_FAKE_CLOCK_START = 1_700_000_000_000;

/** The object `FakeClock.setTimeout` returns. `ref`/`unref` exist so code written for Node timers works. */
export interface FakeTimerHandle {
  readonly id: number;
  /** When the timer fires, in clock milliseconds. */
  readonly dueAt: number;
  ref(): FakeTimerHandle;
  unref(): FakeTimerHandle;
  hasRef(): boolean;
}

interface Timer {
  handle: FakeTimerHandle;
  due: number;
  seq: number;
  callback: () => void;
}

export interface FakeClockOptions {
  /** Initial value of `now()`; default 1_700_000_000_000 (2023-11-14T22:13:20Z). */
  start?: number;
  /**
   * How many timers one advance may run before it gives up with an error (guards against a callback
   * that keeps scheduling zero-delay timers). Default 100_000.
   */
  maxTimersPerAdvance?: number;
}

export class FakeClock {
  #now: number;
  #seq = 0;
  /** Live timers by handle; `#heap` may still hold cleared ones (lazy deletion). */
  #timers = new Map<FakeTimerHandle, Timer>();
  #heap: Timer[] = [];
  readonly #maxTimersPerAdvance: number;

  constructor(options: FakeClockOptions | number = {}) {
    const opts = typeof options === 'number' ? { start: options } : options;
    this.#now = opts.start ?? DEFAULT_FAKE_CLOCK_START;
    this.#maxTimersPerAdvance = opts.maxTimersPerAdvance ?? 100_000;
  }

  now(): number {
    return this.#now;
  }

  /**
   * Schedules `callback` at `now() + max(0, delayMillis)`. Timers due at the same instant run in the
   * order they were scheduled.
   */
  setTimeout(callback: () => void, delayMillis = 0): FakeTimerHandle {
    const delay = Number.isFinite(delayMillis) && delayMillis > 0 ? delayMillis : 0;
    const id = ++this.#seq;
    const due = this.#now + delay;
    const handle: FakeTimerHandle = {
      id,
      dueAt: due,
      ref: () => handle,
      unref: () => handle,
      hasRef: () => true,
    };
    const timer: Timer = { handle, due, seq: id, callback };
    this.#timers.set(handle, timer);
    heapPush(this.#heap, timer);
    return handle;
  }

  /** Cancels a timer; unknown, already fired and undefined handles are ignored. */
  clearTimeout(handle: object | undefined | null): void {
    if (handle == null || !this.#timers.delete(handle as FakeTimerHandle)) return;
    if (this.#heap.length > 64 && this.#heap.length > 2 * this.#timers.size) {
      // Drop cleared timers so a test that sets and clears many timers does not grow the heap forever.
      const live = this.#heap.filter((t) => this.#timers.get(t.handle) === t);
      this.#heap = [];
      for (const t of live) heapPush(this.#heap, t);
    }
  }

  /** Number of timers scheduled and not yet fired or cleared. */
  pending(): number {
    return this.#timers.size;
  }

  /** Due time of the next timer, or undefined when none is pending. */
  nextDueAt(): number | undefined {
    return this.#next(Number.POSITIVE_INFINITY)?.due;
  }

  /**
   * Moves time forward by `ms`, running every timer that falls due on the way in time order (timers
   * scheduled by those callbacks included, when they fall due within the window). While a timer runs,
   * `now()` is its due time; afterwards `now()` is the old time plus `ms`.
   */
  advance(ms: number): void {
    const target = this.#target(ms);
    let ran = 0;
    for (;;) {
      const timer = this.#next(target);
      if (timer === undefined) break;
      this.#guard(++ran);
      this.#fire(timer);
    }
    this.#now = target;
  }

  /**
   * Like `advance`, but yields to the event loop (`setImmediate`) before each timer and once at the
   * end, so promise continuations started by one timer run (and may schedule more timers) before the
   * next one fires.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.#target(ms);
    let ran = 0;
    for (;;) {
      await yieldToEventLoop();
      const timer = this.#next(target);
      if (timer === undefined) break;
      this.#guard(++ran);
      this.#fire(timer);
    }
    this.#now = target;
    await yieldToEventLoop();
  }

  /** Runs every pending timer (and those they schedule), moving time to each one's due time. */
  runAll(): void {
    let ran = 0;
    for (;;) {
      const timer = this.#next(Number.POSITIVE_INFINITY);
      if (timer === undefined) break;
      this.#guard(++ran);
      this.#fire(timer);
    }
  }

  #target(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError(`advance: ms must be a finite number >= 0, got ${ms}`);
    return this.#now + ms;
  }

  #guard(ran: number): void {
    if (ran > this.#maxTimersPerAdvance) {
      throw new Error(
        `FakeClock: more than ${this.#maxTimersPerAdvance} timers ran in one advance; a callback probably reschedules itself with no delay`,
      );
    }
  }

  /** The earliest live timer due at or before `limit`, left in place. */
  #next(limit: number): Timer | undefined {
    const heap = this.#heap;
    for (;;) {
      const top = heap[0];
      if (top === undefined) return undefined;
      if (this.#timers.get(top.handle) !== top) {
        heapPop(heap); // cleared or already fired
        continue;
      }
      return top.due <= limit ? top : undefined;
    }
  }

  #fire(timer: Timer): void {
    if (this.#heap[0] === timer) heapPop(this.#heap);
    this.#timers.delete(timer.handle);
    if (timer.due > this.#now) this.#now = timer.due;
    timer.callback();
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

function heapPush(heap: Timer[], timer: Timer): void {
  heap.push(timer);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const p = heap[parent] as Timer;
    if (!before(timer, p)) break;
    heap[i] = p;
    i = parent;
  }
  heap[i] = timer;
}

function heapPop(heap: Timer[]): Timer | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (top === undefined || last === undefined || heap.length === 0) return top;
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= heap.length) break;
    const right = left + 1;
    let child = left;
    if (right < heap.length && before(heap[right] as Timer, heap[left] as Timer)) child = right;
    const c = heap[child] as Timer;
    if (!before(c, last)) break;
    heap[i] = c;
    i = child;
  }
  heap[i] = last;
  return top;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
