// Range locks for read-modify-write: who waits for whom, in which order.
import { describe, it, expect } from 'vitest';
import { RangeLocks } from './range-lock.js';

describe('RangeLocks', () => {
  it('shared ranges (aligned writes) never wait for each other', () => {
    const l = new RangeLocks();
    const got = [];
    l.acquire(0, 8, false, () => got.push('a'));
    l.acquire(0, 8, false, () => got.push('b'));
    expect(got).toEqual(['a', 'b']);
  });

  it('an exclusive range waits for overlapping holders and blocks later overlaps, not others', () => {
    const l = new RangeLocks();
    const got = [];
    let releaseA = () => {};
    l.acquire(0, 8, false, (r) => { got.push('a'); releaseA = r; });
    l.acquire(4, 12, true, (r) => { got.push('rmw'); setTimeout(r, 0); });
    l.acquire(10, 11, false, () => got.push('after-rmw')); // overlaps the waiting RMW: queued behind it
    l.acquire(20, 30, false, () => got.push('elsewhere'));
    expect(got).toEqual(['a', 'elsewhere']);
    releaseA();
    expect(got).toEqual(['a', 'elsewhere', 'rmw']);
    return new Promise((resolve) => setTimeout(() => {
      expect(got).toEqual(['a', 'elsewhere', 'rmw', 'after-rmw']);
      resolve(undefined);
    }, 5));
  });

  it('a grant that releases at once does not confuse the waiters behind it', () => {
    const l = new RangeLocks();
    const got = [];
    let release = () => {};
    l.acquire(0, 4, true, (r) => { release = r; });
    for (let i = 0; i < 5; i++) l.acquire(0, 4, true, (r) => { got.push(i); r(); });
    release();
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(l.held.size).toBe(0);
    expect(l.waiting.length).toBe(0);
  });

  it('releasing twice is harmless', async () => {
    const l = new RangeLocks();
    const r = await l.lock(0, 1, true);
    r();
    r();
    expect(l.exclusiveHeld).toBe(0);
  });
});
