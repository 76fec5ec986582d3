/**
 * A first-come first-served line of callers. It knows nothing about connections: the pool decides
 * what a waiter receives. It is a ring buffer (no allocation per push or shift once grown), and a
 * waiter that gave up is marked settled and skipped, so removal is O(1).
 */
export interface Waiting {
  /** Set once the waiter got its answer or gave up; it is then skipped. */
  settled: boolean;
}

export class WaiterQueue<T extends Waiting> {
  private ring: (T | undefined)[] = new Array(16);
  private mask = 15;
  private head = 0;
  /** Entries in the ring, settled ones included. */
  private size = 0;
  /** Entries still waiting. */
  private live = 0;

  get length(): number {
    return this.live;
  }

  push(item: T): void {
    if (this.size === this.ring.length) this.grow();
    this.ring[(this.head + this.size) & this.mask] = item;
    this.size++;
    this.live++;
  }

  /** The oldest waiter still waiting, without removing it. */
  peek(): T | undefined {
    if (this.live === 0) return undefined;
    this.skipSettled();
    return this.ring[this.head];
  }

  /** Removes and returns the oldest waiter still waiting. */
  shift(): T | undefined {
    if (this.live === 0) return undefined;
    this.skipSettled();
    const item = this.ring[this.head] as T;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    this.live--;
    return item;
  }

  /** Call when a queued waiter settles on its own (timeout, abort); it leaves the count at once. */
  forget(item: T): void {
    if (!item.settled) throw new Error('forget() expects a settled waiter');
    this.live--;
    if (this.live === 0) this.clear();
  }

  /** Waiters still waiting, oldest first. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.size; i++) {
      const item = this.ring[(this.head + i) & this.mask];
      if (item !== undefined && !item.settled) yield item;
    }
  }

  /** Drops settled entries at the front (the caller knows a live one exists). */
  private skipSettled(): void {
    for (let item = this.ring[this.head]; item === undefined || item.settled; item = this.ring[this.head]) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) & this.mask;
      this.size--;
    }
  }

  private clear(): void {
    for (let i = 0; i < this.size; i++) this.ring[(this.head + i) & this.mask] = undefined;
    this.head = 0;
    this.size = 0;
  }

  private grow(): void {
    const next: (T | undefined)[] = new Array(this.ring.length * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.ring[(this.head + i) & this.mask];
    this.ring = next;
    this.mask = next.length - 1;
    this.head = 0;
  }
}
