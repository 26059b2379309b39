// Every table rejection names its line, including failures found while a target prepares
// (a snapshot reading its COW header), not only those found by the parser and constructors.
import { describe, it, expect } from 'vitest';
import { newHarness } from './harness.js';

describe('preparation errors name the table line', () => {
  it('for a failure found at once (transient snapshot without a chunk size)', async () => {
    const h = await newHarness();
    h.disk('d.img', 64);
    h.disk('c.img', 64);
    const id = h.core.createDevice('t');
    expect(() => h.load(id, '0 32 linear d.img 0\n32 32 snapshot d.img c.img N 0')).toThrow('t: line 2: snapshot: chunk size not set');
  });
  it('for a failure found after reading metadata (a foreign COW header)', async () => {
    const h = await newHarness();
    h.disk('d.img', 64);
    const c = h.disk('c.img', 64);
    h.disks.get(c).fill(0x5a);
    const id = h.core.createDevice('t');
    expect(() => h.load(id, '# a comment line\n0 64 snapshot d.img c.img P 8')).toThrow('t: line 2: snapshot: failed to read snapshot metadata');
  });
});
