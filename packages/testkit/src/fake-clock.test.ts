import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_FAKE_CLOCK_START, FakeClock } from './fake-clock.js';

describe('FakeClock', () => {
  it('starts at the default or the given time', () => {
    assert.equal(new FakeClock().now(), DEFAULT_FAKE_CLOCK_START);
    assert.equal(new FakeClock({ start: 5 }).now(), 5);
    assert.equal(new FakeClock(42).now(), 42);
  });

  it('runs due timers in time order, then scheduling order, with now at each due time', () => {
    const clock = new FakeClock({ start: 0 });
    const seen: Array<[string, number]> = [];
    clock.setTimeout(() => seen.push(['c', clock.now()]), 30);
    clock.setTimeout(() => seen.push(['a', clock.now()]), 10);
    clock.setTimeout(() => seen.push(['b1', clock.now()]), 20);
    clock.setTimeout(() => seen.push(['b2', clock.now()]), 20);
    clock.setTimeout(() => seen.push(['late', clock.now()]), 31);
    assert.equal(clock.pending(), 5);

    clock.advance(30);
    assert.deepEqual(seen, [
      ['a', 10],
      ['b1', 20],
      ['b2', 20],
      ['c', 30],
    ]);
    assert.equal(clock.now(), 30);
    assert.equal(clock.pending(), 1);

    clock.advance(1);
    assert.deepEqual(seen.at(-1), ['late', 31]);
    assert.equal(clock.pending(), 0);
  });

  it('runs timers scheduled by callbacks while advancing when they fall inside the window', () => {
    const clock = new FakeClock({ start: 1000 });
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => {
        seen.push(clock.now());
        clock.setTimeout(() => seen.push(clock.now()), 0);
        clock.setTimeout(() => seen.push(clock.now()), 100); // beyond the window
      }, 5);
    }, 10);
    clock.advance(50);
    assert.deepEqual(seen, [1010, 1015, 1015]);
    assert.equal(clock.now(), 1050);
    assert.equal(clock.pending(), 1);
    clock.advance(65);
    assert.deepEqual(seen, [1010, 1015, 1015, 1115]);
  });

  it('clearTimeout cancels, ignores undefined and fired handles; handles have ref/unref', () => {
    const clock = new FakeClock();
    let fired = 0;
    const handle = clock.setTimeout(() => fired++, 10);
    assert.equal(typeof handle, 'object');
    assert.equal(handle.unref(), handle);
    assert.equal(handle.ref(), handle);
    clock.clearTimeout(handle);
    clock.clearTimeout(undefined);
    assert.equal(clock.pending(), 0);
    clock.advance(100);
    assert.equal(fired, 0);

    const h2 = clock.setTimeout(() => fired++, 1);
    clock.advance(1);
    clock.clearTimeout(h2);
    assert.equal(fired, 1);
  });

  it('a callback can clear a timer due at the same instant', () => {
    const clock = new FakeClock({ start: 0 });
    const seen: string[] = [];
    let second: ReturnType<FakeClock['setTimeout']> | undefined;
    clock.setTimeout(() => {
      seen.push('first');
      clock.clearTimeout(second);
    }, 10);
    second = clock.setTimeout(() => seen.push('second'), 10);
    clock.advance(10);
    assert.deepEqual(seen, ['first']);
  });

  it('treats negative and NaN delays as zero and rejects negative advances', () => {
    const clock = new FakeClock({ start: 0 });
    let fired = 0;
    clock.setTimeout(() => fired++, -5);
    clock.setTimeout(() => fired++, Number.NaN);
    clock.advance(0);
    assert.equal(fired, 2);
    assert.throws(() => clock.advance(-1), RangeError);
  });

  it('stops a runaway zero-delay loop', () => {
    const clock = new FakeClock({ maxTimersPerAdvance: 100 });
    const again = () => {
      clock.setTimeout(again, 0);
    };
    clock.setTimeout(again, 0);
    assert.throws(() => clock.advance(1), /more than 100 timers/);
  });

  it('handles many timers in order', () => {
    const clock = new FakeClock({ start: 0 });
    const seen: number[] = [];
    const delays = Array.from({ length: 2000 }, (_, i) => (i * 7919) % 1000);
    const handles = delays.map((d) => clock.setTimeout(() => seen.push(d), d));
    for (let i = 0; i < handles.length; i += 2) clock.clearTimeout(handles[i]);
    clock.advance(1000);
    const expected = delays.filter((_, i) => i % 2 === 1).sort((a, b) => a - b);
    assert.deepEqual(seen, expected);
  });

  it('advanceAsync lets promise continuations run between timers', async () => {
    const clock = new FakeClock({ start: 0 });
    const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
    const seen: number[] = [];
    const task = (async () => {
      await sleep(10);
      seen.push(clock.now());
      await sleep(10); // scheduled from a promise continuation
      seen.push(clock.now());
      await Promise.resolve();
      await sleep(5);
      seen.push(clock.now());
    })();
    await clock.advanceAsync(24);
    assert.deepEqual(seen, [10, 20]);
    assert.equal(clock.now(), 24);
    await clock.advanceAsync(1);
    assert.deepEqual(seen, [10, 20, 25]);
    await task;
  });

  it('plain advance does not wait for promise continuations', async () => {
    const clock = new FakeClock({ start: 0 });
    const seen: number[] = [];
    const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
    const task = (async () => {
      await sleep(10);
      seen.push(clock.now());
      await sleep(10);
      seen.push(clock.now());
    })();
    clock.advance(30);
    assert.deepEqual(seen, []); // continuation has not run yet
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [30]); // the second sleep was scheduled after the advance
    assert.equal(clock.pending(), 1);
    clock.runAll();
    await task;
    assert.deepEqual(seen, [30, 40]);
  });
});
