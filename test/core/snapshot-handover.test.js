// A snapshot reloaded onto the same COW device takes the live store over at resume
// (dm-snap.c __handover_exceptions). The old table must be destroyed only after the new one
// resumed, as do_resume does, or the store's metadata buffers are freed under the new table.
import { describe, it, expect } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { readCow } from '../../host-nbd/snapshot/cow-reader.js';

describe('snapshot reload with the same COW device', () => {
  it('keeps writing correct metadata after the handover', async () => {
    const h = await newHarness();
    const base = h.disk('base.img', 64);
    const cow = h.disk('cow.img', 128);
    h.disks.get(base).set(sectorBytes(64, 1));
    const table = '0 64 snapshot base.img cow.img P 8';
    const o = h.device('o', '0 64 snapshot-origin base.img');
    const s = h.device('s', table);
    expect(h.write(o, 0, sectorBytes(8, 50))).toBe(0);
    h.load(s, table);
    h.core.resume(s);
    expect(h.write(o, 16, sectorBytes(8, 60))).toBe(0);
    const c = h.disks.get(cow);
    const info = await readCow(async (pos, len) => c.slice(pos, pos + len), c.length);
    expect(info.exceptions).toEqual([{ old: 0, new: 2 }, { old: 2, new: 3 }]);
    // nothing but the two entries in the first metadata area
    expect(c.subarray(8 * 512 + 32, 16 * 512).every((b) => b === 0)).toBe(true);
  });

  it('is cancelled when the live snapshot is removed first: the new one is invalid and never touches the COW device', async () => {
    const h = await newHarness();
    h.disk('base.img', 64);
    const cow = h.disk('cow.img', 128);
    const table = '0 64 snapshot base.img cow.img P 8';
    const a = h.device('a', table);
    expect(h.write(a, 0, sectorBytes(8, 50))).toBe(0);
    const b = h.core.createDevice('b');
    h.load(b, table); // waits to take a's store over at resume
    h.core.removeDevice(a); // snapshot_dtr: "Cancelling snapshot handover"
    const before = h.disks.get(cow).slice();
    h.core.resume(b);
    expect(h.core.status(b)).toBe('0 64 snapshot Invalid\n');
    expect(h.read(b, 0, 8).status).toBe(5);
    expect(h.write(b, 16, sectorBytes(8, 60))).toBe(5);
    expect(h.disks.get(cow)).toEqual(before);
  });
});
