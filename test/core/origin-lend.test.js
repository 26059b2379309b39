// COW chunks lent to a host that copies first writes itself (snapshot/thread-copies.ts): only
// for an origin's one snapshot, here transient (persistent: origin-lend-persistent.test.js); the
// status line counts a lent chunk once a copy is folded into it, never before; unused ones come
// back from the end; and the snapshot reads the folded chunks from the COW device as if its own
// copies had put them there.
import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes, chunkList } from './harness.js';

let h, o, cowId;
const ORIGIN = 256; // sectors
beforeEach(async () => {
  h = await newHarness();
  h.disk('base.img', ORIGIN);
  cowId = h.disk('cow.img', 128);
  h.disk('cow2.img', 128);
  o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
});

describe('lending COW chunks to the host', () => {
  it('is for the origin\'s only snapshot', () => {
    expect(h.core.originLendable(o, 0)).toBe(0); // no snapshot
    h.device('s', `0 ${ORIGIN} snapshot base.img cow.img N 8`);
    expect(h.core.originLendable(o, 0)).toBe(16);
    expect(h.core.originArea(o, 0)).toBe(null); // persistent stores only
    h.device('p', `0 ${ORIGIN} snapshot base.img cow2.img P 8`);
    expect(h.core.originLendable(o, 0)).toBe(0); // two snapshots
    expect(h.core.originLend(o, 0, 4)).toBe(null);
  });

  it('counts a chunk once a copy is folded into it, and takes the unused ones back', () => {
    const s = h.device('s', `0 ${ORIGIN} snapshot base.img cow.img N 8`);
    expect(h.core.originLendable(o, 0)).toBe(16);
    expect(h.core.originLend(o, 0, 4)).toBe(0);
    expect(h.core.originLendable(o, 0)).toBe(12);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 0/128 0\n`);
    expect(h.core.originFold(o, 0, 5, 0)).toBe(true);
    expect(h.core.originFold(o, 0, 5, 1)).toBe(false); // chunk 5 has its exception
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 8/128 0\n`);
    expect(() => h.core.originUnlend(o, 0, 1, 2)).toThrow(/not the last lent/);
    h.core.originUnlend(o, 0, 1, 3);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 8/128 0\n`);
    // The core hands out the next chunk after the folded one, as if it had made that copy.
    expect(h.write(o, 8, sectorBytes(8, 3))).toBe(0);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 16/128 0\n`);
    expect(chunkList(h.core.originExceptions(o, 0))).toEqual([1, 5]);
  });

  it('has the snapshot read a folded chunk from the COW chunk it was lent', () => {
    const s = h.device('s', `0 ${ORIGIN} snapshot base.img cow.img N 8`);
    expect(h.core.originLend(o, 0, 2)).toBe(0);
    // The host copied origin chunk 3 into COW chunk 1 (here: what it would have read), then
    // wrote the origin there.
    h.disks.get(cowId).set(sectorBytes(8, 7), 8 * 512);
    expect(h.core.originFold(o, 0, 3, 1)).toBe(true);
    expect(h.write(o, 24, sectorBytes(8, 9))).toBe(0);
    expect(h.read(s, 24, 8).data).toEqual(sectorBytes(8, 7));
    expect(h.read(o, 24, 8).data).toEqual(sectorBytes(8, 9));
  });

  it('refuses a fold into a chunk it did not lend, and records nothing', () => {
    const s = h.device('s', `0 ${ORIGIN} snapshot base.img cow.img N 8`);
    expect(h.core.originLend(o, 0, 2)).toBe(0);
    expect(h.core.originFold(o, 0, 3, 0)).toBe(true);
    h.core.originUnlend(o, 0, 1, 1);
    expect(h.core.originLend(o, 0, 2)).toBe(1); // a new run: chunks 1 and 2
    for (const cow of [0, 3, 16]) expect(h.core.originFold(o, 0, 4, cow)).toBe(false);
    expect(h.core.originFold(o, 0, -1, 3)).toBe(false);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 8/128 0\n`);
    expect(chunkList(h.core.originExceptions(o, 0))).toEqual([3]);
    expect(h.core.originFold(o, 0, 4, 2)).toBe(true);
    expect(chunkList(h.core.originExceptions(o, 0))).toEqual([3, 4]);
  });

  it('invalidates the snapshot when a lent chunk\'s copy failed, as dm-snap does for any failed copy', () => {
    const s = h.device('s', `0 ${ORIGIN} snapshot base.img cow.img N 8`);
    h.core.originLend(o, 0, 2);
    expect(h.core.originFold(o, 0, -1, 0)).toBe(true);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot Invalid\n`);
    expect(h.core.originLend(o, 0, 2)).toBe(null); // nothing more is lent to the threads
    expect(h.core.originFold(o, 0, 5, 1)).toBe(true); // a copy still coming back records nothing
  });
});
