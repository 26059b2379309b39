// OriginMarks picks the chunk its marks count in and marks only what the core says is copied.
import { describe, it, expect } from 'vitest';
import { newHarness, sectorBytes } from '../../test/core/harness.js';
import { OriginMarks, MAX_MARKS } from './origin-marks.js';

async function setup(originSectors, snapshots) {
  const h = await newHarness();
  h.disk('base.img', originSectors);
  const o = h.device('base', `0 ${originSectors} snapshot-origin base.img`);
  snapshots.forEach(([kind, chunk], i) => {
    h.disk(`cow${i}.img`, 4096);
    h.device(`snap${i}`, `0 ${originSectors} snapshot base.img cow${i}.img ${kind} ${chunk}`);
  });
  const marked = [];
  const map = { mark: (first, count) => marked.push([first, count]) };
  return { h, o, map, marked };
}

describe('OriginMarks', () => {
  it('is null with no snapshot watching the origin (nothing to guard)', async () => {
    const { h, o, map } = await setup(256, []);
    expect(OriginMarks.of(h.core, o, [{ start: 0 }], map, 256 * 512)).toBe(null);
  });

  it('counts in the smallest chunk of the snapshots, doubled only past MAX_MARKS', async () => {
    const { h, o, map } = await setup(256, [['N', 16], ['N', 8]]);
    expect(OriginMarks.of(h.core, o, [{ start: 0 }], map, 256 * 512).chunk).toBe(8);
    // A device claimed 4 * MAX_MARKS chunks long: chunks of 32 sectors keep the marks within bounds.
    const huge = OriginMarks.of(h.core, o, [{ start: 0 }], map, 4 * MAX_MARKS * 8 * 512);
    expect(huge.chunk).toBe(32);
    expect(huge.publication()).toEqual([32 * 512, 4 * MAX_MARKS * 8 * 512]);
  });

  it('marks the chunks under a write once every snapshot has copied them', async () => {
    const { h, o, map, marked } = await setup(256, [['N', 8], ['N', 16]]);
    const marks = OriginMarks.of(h.core, o, [{ start: 0 }], map, 256 * 512);
    // Written through the core: snap0 copied chunk 1 (sectors 8-15), snap1 chunk 0 (0-15).
    expect(h.write(o, 8, sectorBytes(8, 3))).toBe(0);
    marks.wrote(8, 8);
    expect(marked).toEqual([[1, 1]]);
    // Mark chunk 0 too: snap1 has it, snap0 not yet; a write across chunks 1-2 marks only 1.
    marks.wrote(0, 8);
    expect(marked).toEqual([[1, 1]]);
    marks.wrote(12, 8);
    expect(marked).toEqual([[1, 1], [1, 1]]);
  });
});
