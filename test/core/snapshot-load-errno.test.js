// A COW device whose header is neither blank nor a snapshot's is refused with ENXIO, the
// errno Linux's read_header returns ("Invalid or corrupt snapshot"), and is left untouched.
import { describe, it, expect } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { ERRNO } from '../../core-as/js/dmcore.js';

describe('snapshot table load on a foreign COW device', () => {
  it('fails with ENXIO and writes nothing', async () => {
    const h = await newHarness();
    h.disk('base.img', 32);
    const cow = h.disk('cow.img', 32);
    h.disks.get(cow).set(sectorBytes(32, 7));
    const before = h.disks.get(cow).slice();
    const id = h.core.createDevice('s');
    let err;
    try { h.load(id, '0 32 snapshot base.img cow.img P 8'); } catch (e) { err = e; }
    expect(err?.errno).toBe(ERRNO.ENXIO);
    expect(err?.message).toContain('invalid or corrupt snapshot');
    expect(h.disks.get(cow)).toEqual(before);
  });
});
