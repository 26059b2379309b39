// A batch's commands grouped into runs of small reads or writes adjacent in one file: what joins
// a run, and what ends one.
import { describe, it, expect } from 'vitest';
import { OP, FLAG } from '../../core-as/js/dmcore.js';
import { adjacentGroups, RUN_MAX_PARTS } from './adjacent-groups.js';
import { MERGE_MAX_BYTES } from './transfer-plug.js';

const KiB = 1024;
const SYNC_MAX = 64 * KiB;
/** backing id -> file: 0 and 1 are open files, 2 is not. */
const files = [{ syncMaxBytes: SYNC_MAX }, { syncMaxBytes: SYNC_MAX }];

/**
 * Command records as the core emits them, 8 words each, and where each starts.
 * @param {Array<{backing?: number, op?: number, flags?: number, sector: number, bytes: number}>} cmds
 */
function batch(cmds) {
  const c = new Uint32Array(cmds.length * 8);
  cmds.forEach(({ backing = 0, op = OP.READ, flags = 0, sector, bytes }, k) => {
    c.set([100 + k, backing, op, flags, sector % 4294967296, Math.floor(sector / 4294967296), bytes / 512, 4096 * k], k * 8);
  });
  return { c, plain: cmds.map((_, k) => k * 8) };
}

/** The groups as command numbers (0, 1, ...) instead of word offsets. */
function groupsOf(cmds) {
  const { c, plain } = batch(cmds);
  return adjacentGroups(c, plain, files).map((g) => g.map((i) => i / 8));
}

describe('adjacentGroups', () => {
  it('joins reads, and writes, each starting where the one before ended in the same file', () => {
    expect(groupsOf([{ sector: 8, bytes: 4 * KiB }, { sector: 16, bytes: 4 * KiB }, { sector: 24, bytes: 8 * KiB }])).toEqual([[0, 1, 2]]);
    const writes = [0, 8, 16].map((sector) => ({ op: OP.WRITE, sector, bytes: 4 * KiB }));
    expect(groupsOf(writes)).toEqual([[0, 1, 2]]);
  });

  it('ends a run at a gap, an overlap, another file, or the other direction', () => {
    expect(groupsOf([{ sector: 0, bytes: 4 * KiB }, { sector: 16, bytes: 4 * KiB }])).toEqual([[0], [1]]);
    expect(groupsOf([{ sector: 0, bytes: 4 * KiB }, { sector: 4, bytes: 4 * KiB }])).toEqual([[0], [1]]);
    expect(groupsOf([{ sector: 0, bytes: 4 * KiB }, { backing: 1, sector: 8, bytes: 4 * KiB }])).toEqual([[0], [1]]);
    expect(groupsOf([{ sector: 0, bytes: 4 * KiB }, { op: OP.WRITE, sector: 8, bytes: 4 * KiB }])).toEqual([[0], [1]]);
  });

  it('keeps alone what must go by itself: FUA, zeroing, large transfers, unknown devices', () => {
    expect(groupsOf([{ op: OP.WRITE, flags: FLAG.FUA, sector: 0, bytes: 4 * KiB }, { op: OP.WRITE, sector: 8, bytes: 4 * KiB }])).toEqual([[0], [1]]);
    expect(groupsOf([{ op: OP.WRITE, sector: 0, bytes: 4 * KiB }, { op: OP.WRITE, flags: FLAG.FUA, sector: 8, bytes: 4 * KiB }])).toEqual([[0], [1]]);
    expect(groupsOf([{ op: OP.WRITE_ZEROES, sector: 0, bytes: 4 * KiB }, { op: OP.WRITE_ZEROES, sector: 8, bytes: 4 * KiB }])).toEqual([[0], [1]]);
    expect(groupsOf([{ sector: 0, bytes: 128 * KiB }, { sector: 256, bytes: 4 * KiB }])).toEqual([[0], [1]]);
    expect(groupsOf([{ sector: 0, bytes: 4 * KiB }, { sector: 8, bytes: 128 * KiB }, { sector: 264, bytes: 4 * KiB }])).toEqual([[0], [1], [2]]);
    expect(groupsOf([{ backing: 2, sector: 0, bytes: 4 * KiB }, { backing: 2, sector: 8, bytes: 4 * KiB }])).toEqual([[0], [1]]);
  });

  it('reads positions beyond 2 TiB from both words of the sector', () => {
    const far = 2 ** 33; // sectors: 4 TiB, the high word is 2
    expect(groupsOf([{ sector: far, bytes: 4 * KiB }, { sector: far + 8, bytes: 4 * KiB }])).toEqual([[0, 1]]);
    expect(groupsOf([{ sector: far, bytes: 4 * KiB }, { sector: 8, bytes: 4 * KiB }])).toEqual([[0], [1]]);
  });

  it('caps a run at RUN_MAX_PARTS commands and MERGE_MAX_BYTES', () => {
    const small = Array.from({ length: RUN_MAX_PARTS + 1 }, (_, k) => ({ sector: k, bytes: 512 }));
    expect(groupsOf(small).map((g) => g.length)).toEqual([RUN_MAX_PARTS, 1]);
    const n = MERGE_MAX_BYTES / SYNC_MAX + 1;
    const big = Array.from({ length: n }, (_, k) => ({ sector: k * (SYNC_MAX / 512), bytes: SYNC_MAX }));
    expect(groupsOf(big).map((g) => g.length)).toEqual([n - 1, 1]);
  });

  it('groups only the commands it is given, in their order', () => {
    const { c } = batch([{ sector: 0, bytes: 4 * KiB }, { sector: 8, bytes: 4 * KiB }, { sector: 16, bytes: 4 * KiB }]);
    expect(adjacentGroups(c, [0, 16], files)).toEqual([[0], [16]]);
    expect(adjacentGroups(c, [], files)).toEqual([]);
  });
});
