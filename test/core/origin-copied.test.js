// What a host asks before letting its own threads write an origin (dm_origin_chunk,
// dm_origin_copied): a chunk every watching snapshot has finished copying, and nothing else.
import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP } from '../../core-as/js/dmcore.js';

let h, o;
const ORIGIN = 256; // sectors
beforeEach(async () => {
  h = await newHarness();
  h.disk('base.img', ORIGIN);
  h.disk('cow.img', 128);
  h.disk('cow2.img', 128);
  o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
});

describe('dm_origin_chunk', () => {
  it('is 0 with no snapshot, then the smallest chunk of the snapshots', () => {
    expect(h.core.originChunk(o, 0)).toBe(0);
    h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 16`);
    expect(h.core.originChunk(o, 0)).toBe(16);
    h.device('snap2', `0 ${ORIGIN} snapshot base.img cow2.img N 8`);
    expect(h.core.originChunk(o, 255)).toBe(8);
  });

  it('is null where no snapshot-origin segment is live', () => {
    const l = h.device('lin', `0 ${ORIGIN} linear base.img 0`);
    expect(h.core.originChunk(l, 0)).toBe(null);
    const mixed = h.device('mixed', `0 8 linear cow2.img 0\n8 8 snapshot-origin base.img`);
    expect(h.core.originChunk(mixed, 0)).toBe(null);
    expect(h.core.originChunk(mixed, 8)).toBe(0);
    h.core.suspend(o);
    expect(h.core.originChunk(o, 0)).toBe(null);
  });
});

describe('dm_origin_copied', () => {
  it('with no snapshot every write goes straight on', () => {
    expect(h.core.originCopied(o, 0, 8)).toBe(true);
  });

  it('a chunk is copied once the snapshot finished its exception, not before', () => {
    h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    expect(h.core.originCopied(o, 16, 8)).toBe(false);
    // Start the first write to chunk 2 and hold its copy: pending is not copied.
    const buf = h.buffer(sectorBytes(1, 9));
    h.submit(o, OP.WRITE, 17, 1, buf);
    const held = h.core.takeCommands();
    expect(held.length).toBeGreaterThan(0);
    expect(h.core.originCopied(o, 16, 8)).toBe(false);
    for (const c of held) h.execute(c);
    h.settle();
    expect(h.core.originCopied(o, 16, 8)).toBe(true);
    expect(h.core.originCopied(o, 17, 1)).toBe(true);
    // A range that reaches into a chunk not copied is not.
    expect(h.core.originCopied(o, 20, 8)).toBe(false);
    expect(h.core.originCopied(o, 24, 8)).toBe(false);
  });

  it('needs every snapshot to have copied the chunk', () => {
    h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    expect(h.write(o, 40, sectorBytes(8, 3))).toBe(0);
    expect(h.core.originCopied(o, 40, 8)).toBe(true);
    // A second snapshot taken now has copied nothing.
    h.device('snap2', `0 ${ORIGIN} snapshot base.img cow2.img N 8`);
    expect(h.core.originCopied(o, 40, 8)).toBe(false);
    expect(h.write(o, 40, sectorBytes(8, 4))).toBe(0);
    expect(h.core.originCopied(o, 40, 8)).toBe(true);
  });

  it('an invalid snapshot takes no more copies, so it no longer holds writes back', () => {
    const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img N 8`);
    expect(h.core.originCopied(o, 0, 8)).toBe(false);
    // 128 sectors of COW hold 16 chunks: the 17th first write overflows it.
    for (let c = 0; c < 17; c++) h.write(o, c * 8, sectorBytes(1, c));
    expect(h.core.status(s)).toContain('Invalid');
    expect(h.core.originCopied(o, 200, 8)).toBe(true);
  });

  it('is false past a segment or on a suspended device', () => {
    h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    expect(h.write(o, 0, sectorBytes(8, 3))).toBe(0);
    expect(h.core.originCopied(o, 0, 8)).toBe(true);
    expect(h.core.originCopied(o, 250, 16)).toBe(false);
    h.core.suspend(o);
    expect(h.core.originCopied(o, 0, 8)).toBe(false);
  });
});
