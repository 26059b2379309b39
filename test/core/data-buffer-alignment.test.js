// Data buffers start on a 64-byte cache line (core-as/data-buffer.ts): those hosts get from
// dm_alloc and those the core allocates itself for chunk copies and read-modify-write. The
// kernel's copies into and out of a buffer 16 bytes off a line run at about half speed.
import { describe, it, expect } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP } from '../../core-as/js/dmcore.js';

const LINE = 64;

describe('data buffers are cache-line aligned', () => {
  it('dm_alloc returns aligned, disjoint blocks of every size, and reuses freed ones', async () => {
    const { core } = await newHarness();
    const blocks = [];
    for (const bytes of [1, 15, 16, 17, 63, 64, 65, 511, 512, 4096, 4097, 65536, 262144, 1 << 20]) {
      const ptr = core.alloc(bytes);
      expect(ptr % LINE, `${bytes} bytes at ${ptr}`).toBe(0);
      core.bytes(ptr, bytes).fill(blocks.length + 1);
      blocks.push({ ptr, bytes, fill: blocks.length + 1 });
    }
    // Writing every block to its end left the others intact: no block overlaps another.
    for (const { ptr, bytes, fill } of blocks) expect(core.bytes(ptr, bytes).every((b) => b === fill)).toBe(true);
    for (const { ptr } of blocks) core.free(ptr);
    const size = core.memoryBytes().length;
    for (let i = 0; i < 2000; i++) core.free(core.alloc(262144 + (i % 7) * 100));
    expect(core.memoryBytes().length, 'alloc/free cycles grow the heap').toBe(size);
  });

  it('a snapshot copy-out reads into and writes from an aligned chunk buffer', async () => {
    const h = await newHarness();
    h.disk('origin', 4096);
    h.disk('cow', 4096);
    const snap = h.device('snap', '0 4096 snapshot origin cow P 8');
    const origin = h.device('base', '0 4096 snapshot-origin origin');
    expect(snap).toBeGreaterThanOrEqual(0);
    const tag = h.submit(origin, OP.WRITE, 24, 1, h.buffer(sectorBytes(1)));
    const seen = [];
    h.drain((cmds) => { seen.push(...cmds.filter((c) => c.op === OP.READ || c.op === OP.WRITE)); return cmds; });
    expect(h.done.get(tag)).toBe(0);
    const copies = seen.filter((c) => c.count === 8);
    expect(copies.length, 'the chunk was read from the origin and written to the COW').toBeGreaterThanOrEqual(2);
    for (const c of seen) expect(c.buf % LINE, `op ${c.op} at sector ${c.sector}`).toBe(0);
  });

  it('ebs reads the partial blocks of an unaligned write into aligned buffers', async () => {
    const h = await newHarness();
    h.disk('d', 4096);
    const dev = h.device('e', '0 4096 ebs d 0 1 8');
    const tag = h.submit(dev, OP.WRITE, 3, 7, h.buffer(sectorBytes(7)));
    const reads = [];
    h.drain((cmds) => { reads.push(...cmds.filter((c) => c.op === OP.READ)); return cmds; });
    expect(h.done.get(tag)).toBe(0);
    expect(reads.length).toBeGreaterThan(0);
    for (const c of reads) expect(c.buf % LINE).toBe(0);
  });
});
