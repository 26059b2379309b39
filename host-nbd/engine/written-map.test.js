// Which 1 MiB granules of a file were written since it was opened.
import { describe, it, expect } from 'vitest';
import { WrittenMap } from './written-map.js';

const MiB = 1 << 20;

describe('WrittenMap', () => {
  it('knows nothing written at first', () => {
    expect(new WrittenMap(8 * MiB).runs(0, 8 * MiB)).toEqual([{ length: 8 * MiB, written: false }]);
  });

  it('marks whole granules, and cuts ranges where written and unwritten granules meet', () => {
    const m = new WrittenMap(8 * MiB);
    m.mark(MiB + 512, 512); // one byte range marks its granule
    m.mark(4 * MiB - 1, 2); // across a boundary: both granules
    expect(m.runs(0, 8 * MiB)).toEqual([
      { length: MiB, written: false }, { length: MiB, written: true }, { length: MiB, written: false },
      { length: 2 * MiB, written: true }, { length: 3 * MiB, written: false },
    ]);
    expect(m.runs(MiB + 100, 1000)).toEqual([{ length: 1000, written: true }]);
    m.mark(0, 0); // nothing
    expect(m.runs(0, MiB)).toEqual([{ length: MiB, written: false }]);
  });

  it('keeps what is marked when the file grows', () => {
    const m = new WrittenMap(2 * MiB);
    m.mark(MiB, 1);
    const bigger = m.grownTo(64 * MiB);
    bigger.mark(40 * MiB, 1);
    expect(bigger.runs(0, 64 * MiB)).toEqual([
      { length: MiB, written: false }, { length: MiB, written: true }, { length: 38 * MiB, written: false },
      { length: MiB, written: true }, { length: 23 * MiB, written: false },
    ]);
    expect(bigger.grownTo(MiB)).toBe(bigger); // smaller: the same map
  });
});
