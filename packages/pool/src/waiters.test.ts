import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WaiterQueue } from './waiters.js';

interface W {
  settled: boolean;
  id: number;
}

describe('WaiterQueue', () => {
  it('serves first-come first-served across growth and wrap-around', () => {
    const q = new WaiterQueue<W>();
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 7; i++) q.push({ settled: false, id: next++ });
      for (let i = 0; i < 5; i++) assert.equal(q.shift()?.id, expected++);
    }
    assert.equal(q.length, 100);
    while (q.length > 0) assert.equal(q.shift()?.id, expected++);
    assert.equal(q.shift(), undefined);
  });

  it('skips waiters that gave up and counts only those still waiting', () => {
    const q = new WaiterQueue<W>();
    const items = Array.from({ length: 40 }, (_, id) => ({ settled: false, id }));
    for (const w of items) q.push(w);
    for (const w of items.filter((w) => w.id % 3 === 0)) {
      w.settled = true;
      q.forget(w);
    }
    assert.equal(q.length, 26);
    assert.deepEqual([...q].map((w) => w.id).slice(0, 4), [1, 2, 4, 5]);
    assert.equal(q.peek()?.id, 1);
    const order: number[] = [];
    for (let w = q.shift(); w; w = q.shift()) order.push(w.id);
    assert.deepEqual(
      order,
      items.filter((w) => w.id % 3 !== 0).map((w) => w.id),
    );
    assert.throws(() => q.forget({ settled: false, id: 99 }), /settled/);
  });

  it('empties itself when the last waiter gives up', () => {
    const q = new WaiterQueue<W>();
    const a = { settled: false, id: 1 };
    q.push(a);
    a.settled = true;
    q.forget(a);
    assert.equal(q.length, 0);
    assert.equal(q.peek(), undefined);
    q.push({ settled: false, id: 2 });
    assert.equal(q.shift()?.id, 2);
  });
});
