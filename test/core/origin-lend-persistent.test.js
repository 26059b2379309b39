// COW chunks lent to a host that copies first writes itself, for an origin's one persistent
// snapshot (snapshot/thread-copies.ts, PersistentStore): data chunks only; the host commits each
// exception to the metadata area on disk itself and the fold mirrors that commit, so the core's
// next own commit writes the same bytes as if every copy had been the core's.
import { describe, it, expect } from 'vitest';
import { newHarness, sectorBytes, chunkList } from './harness.js';
import { OP } from '../../core-as/js/dmcore.js';

const CHUNK = 8; // sectors: 4 KiB, 256 exceptions per metadata area
const CB = CHUNK * 512;
const PER_AREA = 256;
const STRIDE = PER_AREA + 1;
const ORIGIN_CHUNKS = 320;
const ORIGIN = ORIGIN_CHUNKS * CHUNK;
const COW_CHUNKS = 520; // areas 0 and 1 lendable (area 2's metadata chunk, 515, fits)

/** An origin filled with a pattern, and one P snapshot of it on a COW device of cowChunks. */
async function setup(cowChunks = COW_CHUNKS) {
  const h = await newHarness();
  const baseId = h.disk('base.img', ORIGIN);
  const cowId = h.disk('cow.img', cowChunks * CHUNK);
  for (let c = 0; c < ORIGIN_CHUNKS; c++) h.disks.get(baseId).set(sectorBytes(CHUNK, c), c * CB);
  const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
  const s = h.device('s', `0 ${ORIGIN} snapshot base.img cow.img P ${CHUNK}`);
  return { h, o, s, base: h.disks.get(baseId), cow: h.disks.get(cowId) };
}

/** The data chunk after c (metadata chunks sit at 1 + STRIDE * area). */
const nextData = (c) => ((c + 1) % STRIDE === 1 ? c + 2 : c + 1);

describe('lending a persistent snapshot\'s COW chunks', () => {
  it('is for the origin\'s only snapshot, and lends whole areas whose next metadata chunk fits', async () => {
    const { h, o } = await setup();
    expect(h.core.originLendable(o, 0)).toBe(512);
    const buf = h.buffer(24 + CB);
    expect(h.core.x.dm_origin_area(o, 0n, buf, 23 + CB)).toBe(-22); // EINVAL: too small
    expect(h.core.x.dm_origin_area(o, 0n, buf, 24 + CB)).toBe(24 + CB);
    h.disk('cow2.img', 128);
    const n = h.device('n', `0 ${ORIGIN} snapshot base.img cow2.img N ${CHUNK}`);
    expect(h.core.originLendable(o, 0)).toBe(0);
    expect(h.core.originLend(o, 0, 1)).toBe(null);
    expect(h.core.originArea(o, 0)).toBe(null);
    h.core.suspend(n);
    h.core.removeDevice(n);
    expect(h.core.originLendable(o, 0)).toBe(512);
    for (const [chunks, room] of [[258, 0], [259, 256], [515, 256], [516, 512]]) {
      const t = await setup(chunks);
      expect(t.h.core.originLendable(t.o, 0)).toBe(room);
    }
  });

  it('steps over metadata chunks', async () => {
    const { h, o } = await setup();
    expect(h.core.originLend(o, 0, 250)).toBe(2);
    expect(h.core.originLendable(o, 0)).toBe(262);
    expect(h.core.originLend(o, 0, 10)).toBe(252); // 252..257, then 259..262: 258 is area 1's
    expect(h.core.originLend(o, 0, 1)).toBe(263);
    expect(h.core.originLend(o, 0, 252)).toBe(null);
    expect(h.core.originLendable(o, 0)).toBe(251);
  });

  it('refuses a fold into a chunk it did not lend, or into a metadata chunk, and records nothing', async () => {
    const { h, o, s } = await setup();
    expect(h.core.originLend(o, 0, 260)).toBe(2); // data chunks 2..257, 259..262 (258: metadata)
    const before = h.core.status(s);
    for (const cow of [0, 1, 258, 263, 1000]) expect(h.core.originFold(o, 0, 5, cow)).toBe(false);
    expect(h.core.originFold(o, 0, -1, 263)).toBe(false); // a failed copy names a lent chunk too
    expect(h.core.status(s)).toBe(before);
    expect(chunkList(h.core.originExceptions(o, 0))).toEqual([]);
    expect(h.core.originFold(o, 0, 5, 262)).toBe(true); // any lent one, in whatever order threads finish
    expect(h.core.originFold(o, 0, 6, 2)).toBe(true);
    expect(chunkList(h.core.originExceptions(o, 0))).toEqual([5, 6]);
  });

  it('is not while the store writes an area', async () => {
    const { h, o } = await setup();
    h.submit(o, OP.WRITE, 0, 1, h.buffer(512));
    let held = null;
    for (let cmds = h.core.takeCommands(); cmds.length > 0; cmds = h.core.takeCommands()) {
      for (const c of cmds) {
        if (c.op === OP.FLUSH && !held) held = c; // the flush before the area write
        else h.execute(c);
      }
    }
    expect(held).not.toBe(null);
    expect(h.core.originLendable(o, 0)).toBe(0); // the copy is done, its commit is not
    h.execute(held);
    h.drain();
    expect(h.core.originLendable(o, 0)).toBe(511);
  });

  it('counts only used lent chunks, and takes back exactly the unused ones', async () => {
    const { h, o, s } = await setup();
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 16/4160 16\n`);
    expect(h.core.originLend(o, 0, 260)).toBe(2);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 16/4160 16\n`);
    for (let i = 0; i < 3; i++) expect(h.core.originFold(o, 0, 10 + i, 2 + i)).toBe(true);
    expect(h.core.originFold(o, 0, 10, 5)).toBe(false); // chunk 10 has its exception
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 40/4160 16\n`);
    expect(() => h.core.originUnlend(o, 0, 4, 257)).toThrow(/not the last lent/);
    expect(() => h.core.originUnlend(o, 0, 5, 256)).toThrow(/not the last lent/);
    h.core.originUnlend(o, 0, 5, 257);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 40/4160 16\n`);
    expect(h.write(o, 0, sectorBytes(CHUNK, 3))).toBe(0);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot 48/4160 16\n`);
    expect(chunkList(h.core.originExceptions(o, 0))).toEqual([0, 10, 11, 12]);
  });

  it('leaves the COW device as the core\'s own copies would, byte for byte', async () => {
    const FIRST = 300; // rolls over into metadata area 1
    const order = Array.from({ length: FIRST }, (_, i) => (i * 7) % ORIGIN_CHUNKS);
    const last = (FIRST * 7) % ORIGIN_CHUNKS; // not in order
    expect(order.includes(last)).toBe(false);
    const data = (c) => sectorBytes(CHUNK, 100 + c);

    const a = await setup();
    for (const c of order) expect(a.h.write(a.o, c * CHUNK, data(c))).toBe(0);

    const b = await setup();
    const area = b.h.core.originArea(b.o, 0);
    expect(area && { ...area, bytes: area.bytes.length }).toEqual({ perArea: PER_AREA, area: 0, committed: 0, bytes: CB });
    let { area: n, committed, bytes } = /** @type {NonNullable<typeof area>} */ (area);
    const first = b.h.core.originLend(b.o, 0, FIRST + 10);
    expect(first).toBe(2);
    let next = /** @type {number} */ (first);
    const at = (areaNo) => (1 + STRIDE * areaNo) * CB;
    for (const c of order) {
      // What a host thread does: copy, write the origin, commit the area (zeroing the next when full).
      b.cow.set(b.base.subarray(c * CB, (c + 1) * CB), next * CB);
      b.base.set(data(c), c * CB);
      expect(b.h.core.originFold(b.o, 0, c, next)).toBe(true);
      const dv = new DataView(bytes.buffer);
      dv.setBigUint64(committed * 16, BigInt(c), true);
      dv.setBigUint64(committed * 16 + 8, BigInt(next), true);
      committed++;
      if (committed === PER_AREA) b.cow.fill(0, at(n + 1), at(n + 1) + CB);
      b.cow.set(bytes, at(n));
      if (committed === PER_AREA) {
        committed = 0;
        n++;
        bytes = new Uint8Array(CB);
      }
      next = nextData(next);
    }
    expect(b.h.core.originArea(b.o, 0)).toEqual({ perArea: PER_AREA, area: n, committed, bytes });
    expect(n).toBe(1);
    expect(b.h.core.status(b.s)).toBe(a.h.core.status(a.s));
    b.h.core.originUnlend(b.o, 0, next, 10);

    for (const t of [a, b]) expect(t.h.write(t.o, last * CHUNK, data(last))).toBe(0);
    expect(b.h.core.status(b.s)).toBe(a.h.core.status(a.s));
    expect(a.h.core.status(a.s)).toBe(`0 ${ORIGIN} snapshot ${(FIRST + 1 + 1 + 2) * CHUNK}/4160 ${3 * CHUNK}\n`);
    expect(Buffer.from(b.cow).equals(Buffer.from(a.cow))).toBe(true);
    expect(Buffer.from(b.base).equals(Buffer.from(a.base))).toBe(true);

    // Both load again with the same exceptions, and read the originals back.
    const reopened = [];
    for (const t of [a, b]) {
      const h = await newHarness();
      h.disks.get(h.disk('base.img', ORIGIN))?.set(t.base);
      h.disks.get(h.disk('cow.img', COW_CHUNKS * CHUNK))?.set(t.cow);
      const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
      const s = h.device('s', `0 ${ORIGIN} snapshot base.img cow.img P ${CHUNK}`);
      reopened.push({ status: h.core.status(s), exceptions: chunkList(h.core.originExceptions(o, 0)) });
      for (const c of [order[0], order[FIRST - 1], last]) expect(h.read(s, c * CHUNK, CHUNK).data).toEqual(sectorBytes(CHUNK, c));
    }
    expect(reopened[1]).toEqual(reopened[0]);
    expect(reopened[0].exceptions).toEqual([...order, last].sort((x, y) => x - y));
  });
});

describe('a host copy or commit that failed', () => {
  /** The COW header's valid field, once the core's I/O ran. */
  const headerValid = (t) => {
    t.h.drain();
    return new DataView(t.cow.buffer).getUint32(4, true);
  };

  it('invalidates a persistent snapshot: a failed copy uses its chunk', async () => {
    const t = await setup();
    t.h.core.originLend(t.o, 0, 4);
    expect(headerValid(t)).toBe(1);
    expect(t.h.core.originFold(t.o, 0, -1, 2)).toBe(true);
    expect(t.h.core.status(t.s)).toBe(`0 ${ORIGIN} snapshot Invalid\n`);
    expect(headerValid(t)).toBe(0);
    expect(t.h.core.originLendable(t.o, 0)).toBe(0);
    // The other threads' copies still come back, and the unused chunks.
    expect(t.h.core.originFold(t.o, 0, 7, 3)).toBe(true);
    expect(() => t.h.core.originUnlend(t.o, 0, 3, 2)).toThrow(/not the last lent/);
    t.h.core.originUnlend(t.o, 0, 4, 2);
  });

  it('invalidates a persistent snapshot: a failed commit uses no chunk', async () => {
    const t = await setup();
    t.h.core.originLend(t.o, 0, 4);
    expect(t.h.core.originFold(t.o, 0, 7, 2)).toBe(true);
    expect(t.h.core.originFold(t.o, 0, -2, 0)).toBe(true);
    expect(t.h.core.status(t.s)).toBe(`0 ${ORIGIN} snapshot Invalid\n`);
    expect(headerValid(t)).toBe(0);
    t.h.core.originUnlend(t.o, 0, 3, 3);
  });

  it('invalidates a transient snapshot on a failed commit too', async () => {
    const h = await newHarness();
    h.disk('base.img', ORIGIN);
    h.disk('cow.img', 128);
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    const s = h.device('s', `0 ${ORIGIN} snapshot base.img cow.img N ${CHUNK}`);
    h.core.originLend(o, 0, 2);
    expect(h.core.originFold(o, 0, -2, 0)).toBe(true);
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot Invalid\n`);
    h.core.originUnlend(o, 0, 0, 2);
  });
});
