import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP, ERRNO } from '../../core-as/js/dmcore.js';
import { readCow } from '../../host-nbd/snapshot/cow-reader.js';

let h, base, cow;
const ORIGIN = 256; // sectors
beforeEach(async () => {
  h = await newHarness();
  base = h.disk('base.img', ORIGIN);
  cow = h.disk('cow.img', 128);
  h.disks.get(base).set(sectorBytes(ORIGIN, 1));
});
const cowInfo = () => readCow(async (pos, len) => h.disks.get(cow).slice(pos, pos + len), h.disks.get(cow).length);
const first = (dev, sector) => h.read(dev, sector, 1).data[0];
const origSector = (s) => (s + 1) & 255;

function pair(kind = 'P', chunk = 8) {
  const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
  const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img ${kind} ${chunk}`);
  return { o, s };
}

describe('snapshot constructor', () => {
  const cases = [
    ['0 256 snapshot base.img cow.img P', 'requires 4 or more arguments'],
    ['0 256 snapshot nosuch cow.img P 8', 'cannot get origin device: unknown device nosuch'],
    ['0 300 snapshot base.img cow.img P 8', 'cannot get origin device: device base.img is too small'],
    ['0 256 snapshot base.img nosuch P 8', 'cannot get COW device: unknown device nosuch'],
    ['0 256 snapshot base.img base.img P 8', 'COW device cannot be the same as origin device'],
    ['0 256 snapshot base.img cow.img X 8', "exception store type is not P or N: 'X'"],
    ['0 256 snapshot base.img cow.img PX 8', 'unsupported persistent store option: X'],
    ['0 256 snapshot base.img cow.img P x', "invalid chunk size 'x'"],
    ['0 256 snapshot base.img cow.img P 12', 'chunk size 12 is not a power of 2'],
    ['0 256 snapshot base.img cow.img N 0', 'chunk size not set'],
    ['0 256 snapshot base.img cow.img P 8 3 discard_zeroes_cow a b', "invalid number of feature arguments '3' (0-2)"],
    ['0 256 snapshot base.img cow.img P 8 -1', "invalid number of feature arguments '-1' (0-2)"],
    ['0 256 snapshot base.img cow.img P 8 2 discard_zeroes_cow', 'not enough feature arguments: 2 announced, 1 given'],
    ['0 256 snapshot base.img cow.img P 8 1 discard_zeroes_cow extra words', "unexpected arguments after the features: 'extra words'"],
    ['0 256 snapshot base.img cow.img P 8 1 zeroes', "unrecognised snapshot feature 'zeroes'"],
    ['0 256 snapshot base.img cow.img P 8 1 discard_passdown_origin', 'discard_passdown_origin feature depends on discard_zeroes_cow'],
    ['0 256 snapshot nosuch cow.img P 8 1 bogus', "unrecognised snapshot feature 'bogus'"],
    ['0 256 snapshot-origin', 'incorrect number of arguments'],
  ];
  for (const [table, message] of cases) {
    it(`${table} -> ${message}`, () => {
      const id = h.core.createDevice('t');
      expect(() => h.load(id, table)).toThrow(message);
    });
  }
});

describe('persistent snapshot (Linux on-disk format)', () => {
  it('initialises a blank COW device: header, empty first area, status', async () => {
    const { s } = pair();
    const c = h.disks.get(cow);
    expect([...c.subarray(0, 16)]).toEqual([0x53, 0x6e, 0x41, 0x70, 1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]);
    expect(c.subarray(16, 8 * 512).every((b) => b === 0)).toBe(true);
    expect(h.core.status(s)).toBe('0 256 snapshot 16/128 16\n');
    expect(h.core.table(s)).toBe('0 256 snapshot base.img cow.img P 8\n');
    expect((await cowInfo()).exceptions).toEqual([]);
  });

  it('copies an origin chunk out before an origin write lands (read-modify-write)', async () => {
    const { o, s } = pair();
    expect(h.write(o, 10, sectorBytes(2, 100))).toBe(0);
    expect(first(o, 10)).toBe(100);
    expect(first(s, 10)).toBe(origSector(10));
    expect(first(s, 11)).toBe(origSector(11));
    const info = await cowInfo();
    expect(info.exceptions).toEqual([{ old: 1, new: 2 }]);
    // the whole origin chunk 1 (sectors 8..15) sits in COW chunk 2
    const c = h.disks.get(cow);
    for (let k = 0; k < 8; k++) expect(c[(16 + k) * 512]).toBe(origSector(8 + k));
    expect(h.core.status(s)).toBe('0 256 snapshot 24/128 16\n');
  });

  it('read-modify-writes a partial write to the snapshot and leaves the origin alone', async () => {
    const { o, s } = pair();
    expect(h.write(s, 20, sectorBytes(1, 200))).toBe(0);
    expect(first(s, 20)).toBe(200);
    expect(first(s, 21)).toBe(origSector(21)); // the rest of the chunk came from the origin
    expect(first(o, 20)).toBe(origSector(20));
    expect((await cowInfo()).exceptions).toEqual([{ old: 2, new: 2 }]);
  });

  it('writes a whole-chunk snapshot write in place, without reading the origin', () => {
    pair();
    const s = h.core.findDevice('snap');
    const buf = h.buffer(sectorBytes(8, 50));
    const tag = h.submit(s, OP.WRITE, 16, 8, buf);
    const cmds = h.core.takeCommands();
    expect(cmds.map((c) => [c.backing, c.op])).toEqual([[cow, OP.WRITE]]);
    for (const c of cmds) h.execute(c);
    h.drain();
    expect(h.done.get(tag)).toBe(0);
    expect(h.read(s, 16, 8).data).toEqual(sectorBytes(8, 50));
  });

  it('allocates COW chunks in request order and chunk order, committing in that order', async () => {
    const { o } = pair();
    const buf = h.buffer(sectorBytes(24, 9));
    const tag = h.submit(o, OP.WRITE, 40, 24, buf); // chunks 5, 6, 7
    // finish the copy of the last chunk first: commits must still follow allocation order
    h.drain((cmds) => cmds.slice().sort((a, b) => b.sector - a.sector));
    expect(h.done.get(tag)).toBe(0);
    expect((await cowInfo()).exceptions).toEqual([{ old: 5, new: 2 }, { old: 6, new: 3 }, { old: 7, new: 4 }]);
  });

  it('holds an origin write until the copy is committed, and the commit until copies drain', () => {
    const { o } = pair();
    h.submit(o, OP.WRITE, 8, 1, h.buffer(sectorBytes(1, 77)));
    const first = h.core.takeCommands();
    expect(first.map((c) => [c.backing, c.op, c.sector])).toEqual([[base, OP.READ, 8]]); // the copy's read
    h.execute(first[0]);
    const second = h.core.takeCommands();
    expect(second.map((c) => [c.backing, c.op, c.sector])).toEqual([[cow, OP.WRITE, 16]]); // into chunk 2
    h.execute(second[0]);
    const third = h.core.takeCommands();
    expect(third.map((c) => [c.backing, c.op])).toEqual([[cow, OP.FLUSH]]); // metadata: flush first
    h.execute(third[0]);
    const fourth = h.core.takeCommands();
    expect(fourth.map((c) => [c.backing, c.op, c.flags, c.sector])).toEqual([[cow, OP.WRITE, 1, 8]]); // area 0, FUA
    h.execute(fourth[0]);
    const fifth = h.core.takeCommands();
    expect(fifth.map((c) => [c.backing, c.op, c.sector])).toEqual([[base, OP.WRITE, 8]]); // only now the origin write
  });

  it('keeps a snapshot read of the old data ahead of the origin write that overwrites it', () => {
    const { o, s } = pair();
    const rbuf = h.buffer(512);
    const rtag = h.submit(s, OP.READ, 30, 1, rbuf); // goes to the origin, chunk 3
    const [read] = h.core.takeCommands();
    const wtag = h.submit(o, OP.WRITE, 30, 1, h.buffer(sectorBytes(1, 99)));
    // run the copy and the commit, but keep the snapshot read in flight
    h.drain();
    expect(h.done.has(wtag)).toBe(false); // the origin write waits for the read
    h.execute(read);
    h.drain();
    h.collect();
    expect(h.done.get(rtag)).toBe(0);
    expect(h.core.bytes(rbuf, 1)[0]).toBe(origSector(30));
    expect(h.done.get(wtag)).toBe(0);
    expect(first(o, 30)).toBe(99);
  });

  it('reloads its exceptions from the COW device', () => {
    const { o, s } = pair();
    h.write(o, 100, sectorBytes(1, 5));
    h.write(s, 200, sectorBytes(1, 6));
    h.core.suspend(s);
    h.core.removeDevice(s);
    const again = h.device('again', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    expect(first(again, 100)).toBe(origSector(100));
    expect(first(again, 200)).toBe(6);
    expect(h.core.status(again)).toBe('0 256 snapshot 32/128 16\n');
  });

  it('takes the chunk size from the COW header over the table', () => {
    pair('P', 8);
    h.core.removeDevice(h.core.findDevice('snap'));
    const again = h.device('again', `0 ${ORIGIN} snapshot base.img cow.img P 16`);
    expect(h.core.table(again)).toBe('0 256 snapshot base.img cow.img P 8\n');
  });

  it('refuses a corrupt COW device with a clear message', () => {
    h.disks.get(cow).set([1, 2, 3, 4]);
    const id = h.core.createDevice('t');
    expect(() => h.load(id, `0 ${ORIGIN} snapshot base.img cow.img P 8`)).toThrow('failed to read snapshot metadata: invalid or corrupt snapshot: bad magic');
    const c = h.disks.get(cow);
    c.set([0x53, 0x6e, 0x41, 0x70, 1, 0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0]);
    expect(() => h.load(id, `0 ${ORIGIN} snapshot base.img cow.img P 8`)).toThrow('unable to handle snapshot disk version 2');
  });

  it('becomes Invalid when the COW device fills up; the origin keeps working', async () => {
    const { o, s } = pair(); // 128 sectors = 16 chunks: header, area, 14 data chunks
    for (let i = 0; i < 14; i++) expect(h.write(o, i * 8, sectorBytes(1, 3))).toBe(0);
    expect(h.core.status(s)).toBe('0 256 snapshot 128/128 16\n');
    const events = h.core.eventsRaised();
    expect(h.core.info(s).eventNr).toBe(0);
    expect(h.write(o, 14 * 8, sectorBytes(1, 4))).toBe(0);
    expect(h.core.status(s)).toBe('0 256 snapshot Invalid\n');
    // dm_table_event, as Linux raises it: the snapshot's device counts one, the origin's none.
    expect(h.core.info(s).eventNr).toBe(1);
    expect(h.core.info(o).eventNr).toBe(0);
    expect(h.core.eventsRaised()).toBe(events + 1);
    expect(h.read(s, 0, 1).status).toBe(ERRNO.EIO);
    expect(first(o, 14 * 8)).toBe(4);
    expect((await cowInfo()).valid).toBe(false); // the header says so, for the next load
    h.core.suspend(s);
    h.core.removeDevice(s); // else the next load would take s's store over, reading nothing
    const id = h.core.createDevice('again');
    h.load(id, `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    h.core.resume(id);
    expect(h.core.status(id)).toBe('0 256 snapshot Invalid\n');
  });

  it('PO reports Overflow instead of invalidating on a full snapshot write, and still reads', () => {
    const { s } = pair('PO');
    for (let i = 0; i < 14; i++) expect(h.write(s, i * 8, sectorBytes(1, 3))).toBe(0);
    expect(h.write(s, 14 * 8, sectorBytes(1, 4))).toBe(ERRNO.EIO);
    expect(h.core.status(s)).toBe('0 256 snapshot Overflow\n');
    expect(h.read(s, 0, 1).status).toBe(0);
    expect(h.write(s, 0, sectorBytes(1, 4))).toBe(ERRNO.EIO);
    expect(h.core.table(s)).toBe('0 256 snapshot base.img cow.img PO 8\n');
  });

  it('fills several metadata areas, zeroing the next area when one fills', async () => {
    // chunk 1 sector: 32 exceptions per area
    h.core.resizeBacking(cow, 128);
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    const s = h.device('snap', `0 ${ORIGIN} snapshot base.img cow.img P 1`);
    for (let i = 0; i < 40; i++) expect(h.write(o, i, sectorBytes(1, 8))).toBe(0);
    const info = await cowInfo();
    expect(info.exceptions.length).toBe(40);
    // area 0 at chunk 1, its data at 2..33, area 1 at chunk 34, data from 35
    expect(info.exceptions[31]).toEqual({ old: 31, new: 33 });
    expect(info.exceptions[32]).toEqual({ old: 32, new: 35 });
    expect(h.core.status(s)).toBe(`0 ${ORIGIN} snapshot ${info.nextFree}/128 3\n`);
    for (let i = 0; i < 40; i++) expect(first(s, i)).toBe(origSector(i));
  });
});

describe('several snapshots and the transient store', () => {
  it('copies out to every snapshot of the origin', () => {
    const cow2 = h.disk('cow2.img', 128);
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    const s1 = h.device('s1', `0 ${ORIGIN} snapshot base.img cow.img P 8`);
    h.write(o, 0, sectorBytes(1, 10));
    const s2 = h.device('s2', `0 ${ORIGIN} snapshot base.img cow2.img N 16`);
    h.write(o, 0, sectorBytes(1, 20));
    h.write(o, 40, sectorBytes(1, 30));
    expect([first(o, 0), first(s1, 0), first(s2, 0)]).toEqual([20, origSector(0), 10]);
    expect([first(o, 40), first(s1, 40), first(s2, 40)]).toEqual([30, origSector(40), origSector(40)]);
    expect(h.core.status(s2)).toBe('0 256 snapshot 32/128 0\n');
    expect(h.core.table(s2)).toBe('0 256 snapshot base.img cow2.img N 16\n');
  });

  it('splits origin writes at the smallest snapshot chunk size', () => {
    h.disk('cow2.img', 128);
    const o = h.device('base', `0 ${ORIGIN} snapshot-origin base.img`);
    h.device('s1', `0 ${ORIGIN} snapshot base.img cow.img N 16`);
    h.device('s2', `0 ${ORIGIN} snapshot base.img cow2.img N 4`);
    expect(h.write(o, 0, sectorBytes(16, 1))).toBe(0);
    expect(h.core.status(h.core.findDevice('s1'))).toBe('0 256 snapshot 16/128 0\n');
    expect(h.core.status(h.core.findDevice('s2'))).toBe('0 256 snapshot 16/128 0\n');
  });

  it('never loses one of several concurrent writes to one chunk', () => {
    const { s } = pair();
    const tags = [];
    for (let k = 0; k < 8; k++) tags.push(h.submit(s, OP.WRITE, 48 + k, 1, h.buffer(sectorBytes(1, 60 + k))));
    h.drain((cmds) => cmds.slice().reverse());
    tags.forEach((t) => expect(h.done.get(t)).toBe(0));
    for (let k = 0; k < 8; k++) expect(first(s, 48 + k)).toBe(60 + k);
  });
});
