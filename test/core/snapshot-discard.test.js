// Snapshot discards with discard_zeroes_cow / discard_passdown_origin (dm-snap.c): what reaches
// the backing devices. The golden vectors check the data; they cannot tell a zeroed COW chunk from
// a discarded one on disks that read discarded sectors as zeroes, so this host's disks ignore
// discards and the tests look at the commands themselves.
import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP } from '../../core-as/js/dmcore.js';

let h, base, cow, seen;
beforeEach(async () => {
  h = await newHarness();
  base = h.disk('base.img', 64);
  cow = h.disk('cow.img', 64);
  h.disks.get(base).set(sectorBytes(64, 3));
  seen = [];
  const execute = h.execute;
  h.execute = (c, status = 0) => {
    seen.push({ op: c.op, backing: c.backing, sector: c.sector, count: c.count,
      zeroes: c.op === OP.WRITE && h.core.bytes(c.buf, c.count * 512).every((b) => b === 0) });
    if (c.op === OP.DISCARD) { h.core.complete(c.cmd, status); return; } // a disk that keeps discarded data
    execute(c, status);
  };
});

function snapshot(features) {
  const s = h.device('snap', `0 64 snapshot base.img cow.img P 8 ${features}`);
  expect(h.write(s, 8, sectorBytes(8, 7))).toBe(0); // chunk 1 -> COW chunk 2 (sectors 16-23)
  seen = [];
  return s;
}

function discard(dev, sector, count) {
  const tag = h.submit(dev, OP.DISCARD, sector, count);
  h.settle();
  return h.done.get(tag);
}

describe('snapshot discards', () => {
  it('a whole chunk with an exception: its COW chunk is written with zeroes, nothing discarded', () => {
    const s = snapshot('1 discard_zeroes_cow');
    expect(discard(s, 8, 8)).toBe(0);
    expect(seen).toEqual([{ op: OP.WRITE, backing: cow, sector: 16, count: 8, zeroes: true }]);
    expect(h.read(s, 8, 8).data.every((b) => b === 0)).toBe(true);
  });

  it('part of a chunk with an exception: discarded in the COW chunk', () => {
    const s = snapshot('1 discard_zeroes_cow');
    expect(discard(s, 10, 3)).toBe(0);
    expect(seen).toEqual([{ op: OP.DISCARD, backing: cow, sector: 18, count: 3, zeroes: false }]);
  });

  it('chunks without an exception: nothing reaches a device, no copy-out', () => {
    const s = snapshot('1 discard_zeroes_cow');
    expect(discard(s, 16, 48)).toBe(0);
    expect(seen).toEqual([]);
    expect(h.core.status(s)).toBe('0 64 snapshot 24/64 16\n');
  });

  it('several chunks are cut at chunk boundaries, also from an unaligned start', () => {
    const s = snapshot('1 discard_zeroes_cow');
    expect(discard(s, 4, 20)).toBe(0); // chunk 0 (no exception), 1 (whole), 2 (no exception)
    expect(seen).toEqual([{ op: OP.WRITE, backing: cow, sector: 16, count: 8, zeroes: true }]);
  });

  it('discard_passdown_origin: the origin device gets the discard too', () => {
    const s = snapshot('2 discard_zeroes_cow discard_passdown_origin');
    expect(discard(s, 6, 10)).toBe(0);
    expect(seen.filter((c) => c.backing === base)).toEqual([
      { op: OP.DISCARD, backing: base, sector: 6, count: 2, zeroes: false },
      { op: OP.DISCARD, backing: base, sector: 8, count: 8, zeroes: false },
    ]);
    expect(seen.filter((c) => c.backing === cow)).toEqual([{ op: OP.WRITE, backing: cow, sector: 16, count: 8, zeroes: true }]);
  });

  it('without features a snapshot takes no discards', () => {
    const s = snapshot('');
    expect(discard(s, 8, 8)).toBe(95); // EOPNOTSUPP
    expect(seen).toEqual([]);
  });
});
