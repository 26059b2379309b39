// @ts-check
// The crash tests' judge (lib/history.js): what a device may hold after a crash, at each level.
// Every crash and power-loss run trusts these answers, so they are proven here on their own.
import { describe, it, expect } from 'vitest';
import { View, Write } from './lib/history.js';
import { SECTOR, sectorsOf } from './lib/pattern.js';

/** Sends write `id` over [first, first + count) and has it answered (ok). */
function acked(view, id, first, count) {
  const w = new Write(id, first, count);
  view.sent(w);
  view.replied(w, true);
  return w;
}

/** A device of `sectors` that holds, per sector, the write ids given. */
function device(ids) {
  return Buffer.concat(ids.map((id, s) => sectorsOf(s, 1, id)));
}

describe('a crash view', () => {
  it('allows the last flushed write or any later one, and nothing before it', () => {
    const v = new View('dev', 2, 1);
    acked(v, 2, 0, 2);
    v.flushed(v.flushSent());
    acked(v, 3, 0, 1);
    expect(v.problems(device([2, 2]), 0, 'flush')).toEqual([]);
    expect(v.problems(device([3, 2]), 0, 'flush')).toEqual([]);
    const [p] = v.problems(device([1, 2]), 0, 'flush');
    expect(p).toMatchObject({ sector: 0, holds: 1 });
    expect(p.text).toBe('dev sector 0: holds write 1, expected one of 2, 3 (level flush; base 1, sent: 2 (flushed), 3 (acked))');
  });

  it('at the acked level, loses no answered write', () => {
    const v = new View('dev', 1, 1);
    acked(v, 2, 0, 1);
    expect(v.problems(device([1]), 0, 'flush')).toEqual([]);
    expect(v.problems(device([1]), 0, 'acked')).toMatchObject([{ sector: 0, holds: 1 }]);
  });

  it('names a sector that holds no write of the run, with no write to blame', () => {
    const v = new View('dev', 2, 1);
    const data = device([1, 1]);
    data.fill(7, SECTOR, 2 * SECTOR);
    expect(v.problems(data, 0, 'acked')).toEqual([
      { sector: 1, holds: null, text: 'dev sector 1: garbage (no pattern header); expected one of writes 1' },
    ]);
    expect(v.check(data, 0, 'acked')).toEqual(['dev sector 1: garbage (no pattern header); expected one of writes 1']);
  });

  it('stops at the limit', () => {
    const v = new View('dev', 4, 2);
    expect(v.problems(device([1, 1, 1, 1]), 0, 'acked', 3)).toHaveLength(3);
  });
});
