/**
 * A first-come first-served line of callers. It knows nothing about connections: the pool decides
 * what a waiter receives. Removal of a waiter that gave up is O(1) (it is marked and skipped).
 */
export interface Waiting {
  /** Set once the waiter got its answer or gave up; it is then skipped. */
  settled: boolean;
}

export class WaiterQueue<T extends Waiting> {
  private items: (T | undefined)[] = [];
  private head = 0;
  private live = 0;

  get length(): number {
    return this.live;
  }

  push(item: T): void {
    if (this.live === 0 && this.items.length > 0) {
      // Only settled leftovers remain: drop them rather than walk past them later.
      this.items.length = 0;
      this.head = 0;
    }
    this.items.push(item);
    this.live++;
  }

  /** The oldest waiter still waiting, without removing it. */
  peek(): T | undefined {
    if (this.live === 0) return undefined;
    this.skipSettled();
    return this.items[this.head];
  }

  /** Removes and returns the oldest waiter still waiting. */
  shift(): T | undefined {
    if (this.live === 0) return undefined;
    this.skipSettled();
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.items[this.head] = undefined;
    this.head++;
    this.live--;
    this.compact();
    return item;
  }

  /** Call when a queued waiter settles on its own (timeout, abort); it leaves the count at once. */
  forget(item: T): void {
    if (!item.settled) throw new Error('forget() expects a settled waiter');
    this.live--;
  }

  /** Waiters still waiting, oldest first. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i];
      if (item !== undefined && !item.settled) yield item;
    }
  }

  private skipSettled(): void {
    while (this.head < this.items.length) {
      const item = this.items[this.head];
      if (item !== undefined && !item.settled) return;
      this.items[this.head] = undefined;
      this.head++;
    }
    this.compact();
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
