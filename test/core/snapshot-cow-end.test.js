// When a metadata area fills, the next area is zeroed on disk first (dm-snap-persistent.c).
// If that area's chunk lies past the end of the COW device, the kernel's write fails and the
// snapshot is invalidated; the core must do the same, never send the host a command past the end.
import { describe, it, expect } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP } from '../../core-as/js/dmcore.js';

describe('persistent store at the end of the COW device', () => {
  it('invalidates the snapshot when the next metadata area does not fit', async () => {
    const h = await newHarness();
    h.disk('base.img', 64);
    const cow = h.disk('cow.img', 34);
    // 1-sector chunks: 32 exceptions per area; area 1 would be chunk 34 of a 34-sector COW.
    const o = h.device('o', '0 64 snapshot-origin base.img');
    const s = h.device('s', '0 64 snapshot base.img cow.img P 1');
    const seen = [];
    const drain = h.drain;
    h.drain = () => drain((cmds) => { seen.push(...cmds); return cmds; });
    expect(h.write(o, 0, sectorBytes(31, 9))).toBe(0);
    expect(h.core.status(s)).toBe('0 64 snapshot 33/34 2\n');
    expect(h.write(o, 31, sectorBytes(1, 9))).toBe(0); // the origin write still succeeds
    expect(h.core.status(s)).toBe('0 64 snapshot Invalid\n');
    const inside = (c) => c.op === OP.FLUSH || c.sector + c.count <= (c.backing === cow ? 34 : 64);
    expect(seen.filter((c) => !inside(c))).toEqual([]);
    expect([...h.disks.get(cow).subarray(4, 8)]).toEqual([0, 0, 0, 0]); // header: valid = 0
    expect(h.read(o, 31, 1).data).toEqual(sectorBytes(1, 9));
  });
});
