import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP } from '../../core-as/js/dmcore.js';
import { readCow } from '../../host-nbd/snapshot/cow-reader.js';

let h, base, cow;
const ORIGIN = 256;
beforeEach(async () => {
  h = await newHarness();
  base = h.disk('base.img', ORIGIN);
  cow = h.disk('cow.img', 128);
  h.disks.get(base).set(sectorBytes(ORIGIN, 1));
});
const cowInfo = () => readCow(async (pos, len) => h.disks.get(cow).slice(pos, pos + len), h.disks.get(cow).length);
const first = (dev, sector) => h.read(dev, sector, 1).data[0];

/** As LVM merges: the origin device's table becomes snapshot-merge over the same COW device. */
function startMerge(o, s, chunk = 8) {
  h.core.suspend(o);
  h.core.suspend(s);
  h.load(o, `0 ${ORIGIN} snapshot-merge base.img cow.img P ${chunk}`);
  h.core.resume(o);
}

describe('snapshot-merge', () => {
  it('folds the snapshot back into the origin and empties the COW table', async () => {
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    h.write(o, 8, sectorBytes(2, 100));   // origin changes chunk 1; the snapshot keeps the old data
    h.write(s, 40, sectorBytes(1, 150));  // the snapshot changes chunk 5
    h.write(s, 48, sectorBytes(8, 160));  // and all of chunk 6
    const before = h.read(s, 0, ORIGIN).data;
    startMerge(o, s);
    expect(h.core.table(o)).toBe('0 256 snapshot-merge base.img cow.img P 8\n');
    h.drain();
    expect(h.read(o, 0, ORIGIN).data).toEqual(before);
    expect(h.disks.get(base).subarray(0, ORIGIN * 512)).toEqual(before);
    expect(h.core.status(o)).toBe('0 256 snapshot-merge 16/128 16\n'); // merged: allocated == metadata
    expect((await cowInfo()).exceptions).toEqual([]);
    h.core.removeDevice(s);
  });

  it('shows the snapshot view while merging, and queues writes to the chunks being merged', () => {
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    h.write(s, 16, sectorBytes(1, 42)); // chunk 2 -> COW chunk 2
    startMerge(o, s);
    // The merge's first step reads the COW run; a write to chunk 2 now must wait for it.
    const wtag = h.submit(o, OP.WRITE, 16, 1, h.buffer(sectorBytes(1, 43)));
    h.drain();
    expect(h.done.get(wtag)).toBe(0);
    expect(first(o, 16)).toBe(43);
    expect(first(o, 17)).toBe(18); // untouched sectors of the merged chunk: the origin's data
  });

  it('copies origin chunks out to other snapshots before merging over them', () => {
    h.disk('cow2.img', 128);
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    const other = h.device('other', `0 ${ORIGIN} snapshot base.img cow2.img N 8`);
    h.write(s, 64, sectorBytes(1, 7));
    startMerge(o, s);
    h.drain();
    expect(first(o, 64)).toBe(7);
    expect(first(other, 64)).toBe(65); // the other snapshot still sees the original origin data
  });

  /** Runs the merge with the commands `failing` picks failed with EIO, as a disk's errors would. */
  function drainFailing(failing) {
    for (;;) {
      const cmds = h.core.takeCommands();
      h.collect();
      if (cmds.length === 0) return;
      for (const c of cmds) h.execute(c, failing(c) ? -5 : 0);
      h.collect();
    }
  }

  const failures = [
    ['its read of the COW run', (c) => c.backing === cow && c.op === OP.READ, 'Read error: shutting down merge.'],
    ['its write to the origin', (c) => c.backing === base && c.op === OP.WRITE, 'Write error: shutting down merge.'],
    ['the origin flush after it', (c) => c.backing === base && c.op === OP.FLUSH, 'Flush after merge failed: shutting down merge'],
    ['its metadata commit', (c) => c.backing === cow && c.op === OP.WRITE, 'Write error in exception store: shutting down merge'],
  ];
  for (const [what, failing, line] of failures) {
    it(`a merge stopped by a failure of ${what}: status 'Merge failed' and one kernel-log line saying why, as dm-snap's DMERR`, () => {
      const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
      const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
      h.write(s, 16, sectorBytes(1, 42));
      expect(h.core.takeLog()).toEqual([]);
      startMerge(o, s);
      drainFailing(failing);
      expect(h.core.status(o)).toMatch(/ snapshot-merge Merge failed\n$/);
      expect(h.core.takeLog()).toEqual([`base: snapshot-merge: ${line}`]);
      expect(h.core.takeLog()).toEqual([]); // taken once
    });
  }

  it('a merge of an invalid snapshot does not start, and the kernel log says so', () => {
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    for (let sector = 0; sector < ORIGIN; sector += 8) h.submit(s, OP.WRITE, sector, 1, h.buffer(sectorBytes(1, 7)));
    h.drain();
    expect(h.core.status(s)).toBe('0 256 snapshot Invalid\n'); // 128 COW sectors cannot hold 32 chunks
    expect(h.core.takeLog()).toEqual(['snap: snapshot: Invalidating snapshot: Unable to allocate exception.']);
    startMerge(o, s);
    h.drain();
    expect(h.core.status(o)).toBe('0 256 snapshot-merge Invalid\n');
    expect(h.core.takeLog()).toEqual(["base: snapshot-merge: Snapshot is invalid: can't merge"]);
  });

  it('the kernel log holds the newest 64 lines for a host that does not take them, and says how many it dropped', () => {
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    h.write(s, 16, sectorBytes(1, 42));
    startMerge(o, s);
    const originWrite = (c) => c.backing === base && c.op === OP.WRITE;
    drainFailing(originWrite);
    for (let i = 0; i < 69; i++) { // as in Linux, a resume starts the merge again: it fails again
      h.core.suspend(o);
      h.core.resume(o);
      drainFailing(originWrite);
    }
    const lines = h.core.takeLog();
    expect(lines).toHaveLength(65);
    expect(lines[0]).toBe('6 earlier log lines were dropped: the host did not take them');
    expect(new Set(lines.slice(1))).toEqual(new Set(['base: snapshot-merge: Write error: shutting down merge.']));
  });
});
