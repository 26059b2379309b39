import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP, FLAG, ERRNO } from '../../core-as/js/dmcore.js';

let h, a;
/** Every command the host saw, and any that broke the whole-block rule. */
let seen, misaligned;
const BLOCK = 8; // underlying block in the tests, sectors

beforeEach(async () => {
  h = await newHarness();
  a = h.disk('a', 512);
  seen = [];
  misaligned = [];
  const execute = h.execute;
  h.execute = (cmd, status = 0) => {
    seen.push(cmd);
    if (cmd.op !== OP.FLUSH && (cmd.sector % BLOCK !== 0 || cmd.count % BLOCK !== 0)) {
      misaligned.push(`${cmd.op}@${cmd.sector}+${cmd.count}`);
    }
    execute(cmd, status);
  };
});

function loadError(args, len = 64) {
  const id = h.core.createDevice(`t${Math.random().toString(36).slice(2)}`);
  try {
    h.load(id, `0 ${len} ebs ${args}`);
    return '';
  } catch (err) {
    return err.message;
  }
}

/** A seeded PRNG (mulberry32) for the random tests. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const orders = {
  fifo: (cmds) => cmds,
  reverse: (cmds) => cmds.slice().reverse(),
  shuffle: (() => { const r = rng(7); return (cmds) => cmds.map((c) => [r(), c]).sort((x, y) => x[0] - y[0]).map((x) => x[1]); })(),
};

describe('ebs ctr', () => {
  const cases = [
    ['a 0', /ebs: invalid argument count: expected <dev> <offset> <emulated sectors> \[<underlying sectors>\], got 2/],
    ['a 0 1 8 9', /ebs: invalid argument count: .* got 5/],
    ['a x 1', /ebs: invalid device offset sector 'x'/],
    ['a 64 1', /ebs: device offset sector 64 must be smaller than the target length 64/],
    ['a 0 0', /ebs: invalid emulated block size '0': 1, 2, 4 or 8 sectors/],
    ['a 0 3', /ebs: invalid emulated block size '3'/],
    ['a 0 16', /ebs: invalid emulated block size '16'/],
    ['a 0 1 0', /ebs: invalid underlying block size '0': a power of two from 1 to 32768 sectors/],
    ['a 0 1 12', /ebs: invalid underlying block size '12'/],
    ['a 0 1 65536', /ebs: invalid underlying block size '65536'/],
    ['nosuch 0 1 8', /ebs: unknown device nosuch/],
    ['a 4 1 8', /ebs: device offset 4 is not a multiple of the underlying block size 8/],
  ];
  for (const [args, message] of cases) {
    it(`rejects '${args}'`, () => {
      expect(loadError(args)).toMatch(message);
    });
  }

  it('needs the whole last underlying block inside the device', () => {
    h.disk('b', 100);
    expect(loadError('b 0 1 32', 90)).toBe('');
    expect(loadError('b 0 1 64', 90)).toMatch(/ebs: device b is too small: the mapping needs sectors 0-128, the device has 100/);
  });

  it('prints its table as given (with or without the underlying size) and an empty status', () => {
    const d = h.device('d', '0 64 ebs a 8 1 8');
    expect(h.core.table(d)).toBe('0 64 ebs a 8 1 8\n');
    expect(h.core.status(d)).toBe('0 64 ebs \n');
    expect(h.core.table(h.device('e', '0 64 ebs a 1024 2'.replace('1024', '16')))).toBe('0 64 ebs a 16 2\n');
  });
});

describe('ebs mapping', () => {
  it('sends block-aligned reads and writes straight to the device at the offset', () => {
    const d = h.device('d', '0 128 ebs a 64 1 8');
    expect(h.write(d, 8, sectorBytes(16, 3))).toBe(0);
    expect(seen.map((c) => [c.op, c.sector, c.count])).toEqual([[OP.WRITE, 72, 16]]);
    expect(h.read(d, 8, 16).data).toEqual(sectorBytes(16, 3));
    expect(seen.map((c) => [c.op, c.sector, c.count])).toEqual([[OP.WRITE, 72, 16], [OP.READ, 72, 16]]);
  });

  it('reads a partial block through a whole-block read', () => {
    h.disks.get(a).set(sectorBytes(16, 50));
    const d = h.device('d', '0 128 ebs a 0 1 8');
    expect(h.read(d, 3, 2).data).toEqual(sectorBytes(16, 50).subarray(3 * 512, 5 * 512));
    expect(seen.map((c) => [c.op, c.sector, c.count])).toEqual([[OP.READ, 0, 8]]);
    expect(misaligned).toEqual([]);
  });

  it('read-modify-writes a partial block and writes the covered middle directly', () => {
    h.disks.get(a).set(sectorBytes(32, 50));
    const d = h.device('d', '0 128 ebs a 0 1 8');
    const data = sectorBytes(14, 9);
    expect(h.write(d, 5, data)).toBe(0); // sectors 5..18: tail of block 0, all of block 1, head of block 2
    const expected = sectorBytes(32, 50);
    expected.set(data, 5 * 512);
    expect(h.disks.get(a).subarray(0, 32 * 512)).toEqual(expected);
    expect(misaligned).toEqual([]);
    const writes = seen.filter((c) => c.op === OP.WRITE).map((c) => [c.sector, c.count]).sort((x, y) => x[0] - y[0]);
    expect(writes).toEqual([[0, 8], [8, 8], [16, 8]]);
    expect(seen.filter((c) => c.op === OP.READ).map((c) => c.sector).sort((x, y) => x - y)).toEqual([0, 16]);
  });

  it('passes FUA on to every write it issues', () => {
    const d = h.device('d', '0 128 ebs a 0 1 8');
    expect(h.write(d, 7, sectorBytes(10, 1), FLAG.FUA)).toBe(0);
    const writes = seen.filter((c) => c.op === OP.WRITE);
    expect(writes.length).toBe(3);
    expect(writes.every((c) => c.flags === FLAG.FUA)).toBe(true);
  });

  it('a failed block read fails the write and writes nothing', () => {
    const d = h.device('d', '0 128 ebs a 0 1 8');
    const tag = h.submit(d, OP.WRITE, 1, 1, h.buffer(sectorBytes(1, 4)));
    const [read] = h.core.takeCommands();
    expect([read.op, read.sector, read.count]).toEqual([OP.READ, 0, 8]);
    h.execute(read, ERRNO.EIO);
    h.drain();
    expect(h.done.get(tag)).toBe(ERRNO.EIO);
    expect(seen.filter((c) => c.op === OP.WRITE)).toEqual([]);
  });

  it('discards only whole blocks, leaving partial ones at the ends alone', () => {
    const d = h.device('d', '0 128 ebs a 0 1 8');
    for (const [sector, count, expected] of [[3, 30, [[8, 24]]], [1, 6, []], [8, 8, [[8, 8]]], [0, 7, []]]) {
      seen = [];
      const tag = h.submit(d, OP.DISCARD, sector, count);
      h.drain();
      expect(h.done.get(tag)).toBe(0);
      expect(seen.map((c) => [c.sector, c.count])).toEqual(expected);
    }
  });

  it('does not take WRITE_ZEROES, as Linux ebs does not', () => {
    const d = h.device('d', '0 128 ebs a 0 1 8');
    const tag = h.submit(d, OP.WRITE_ZEROES, 0, 8);
    h.drain();
    expect(h.done.get(tag)).toBe(ERRNO.EOPNOTSUPP);
  });

  it('without an underlying size, blocks are single sectors and nothing is split', () => {
    const d = h.device('d', '0 128 ebs a 0 1');
    expect(h.write(d, 3, sectorBytes(2, 1))).toBe(0);
    expect(seen.map((c) => [c.op, c.sector, c.count])).toEqual([[OP.WRITE, 3, 2]]);
  });

  for (const [name, order] of Object.entries(orders)) {
    it(`random unaligned reads and writes match a byte-array model, only whole blocks reach the device (${name})`, () => {
      const r = rng(name.length * 1000 + 17);
      const model = sectorBytes(512, 1);
      h.disks.get(a).set(model);
      const d = h.device('d', '0 500 ebs a 8 1 8'); // the last block is partial: 500 = 62 * 8 + 4
      const view = (s, n) => model.subarray((8 + s) * 512, (8 + s + n) * 512);
      const same = (x, y) => Buffer.from(x).equals(Buffer.from(y));
      for (let i = 0; i < 200; i++) {
        const count = 1 + Math.floor(r() * 24);
        const sector = Math.floor(r() * (500 - count + 1));
        if (r() < 0.5) {
          const data = sectorBytes(count, i);
          const buf = h.buffer(data);
          const tag = h.submit(d, OP.WRITE, sector, count, buf);
          h.drain(order);
          expect(h.done.get(tag)).toBe(0);
          view(sector, count).set(data);
          h.core.free(buf);
        } else {
          const buf = h.buffer(count * 512);
          const tag = h.submit(d, OP.READ, sector, count, buf);
          h.drain(order);
          expect(h.done.get(tag)).toBe(0);
          expect(same(h.core.bytes(buf, count * 512), view(sector, count)), `read ${sector}+${count}`).toBe(true);
          h.core.free(buf);
        }
      }
      expect(same(h.disks.get(a), model)).toBe(true);
      expect(misaligned).toEqual([]);
    });
  }
});

describe('ebs concurrency', () => {
  /** Submits writes together, then runs the commands in the given order. */
  function writeTogether(d, writes, order) {
    const tags = writes.map(([sector, data]) => h.submit(d, OP.WRITE, sector, data.length / 512, h.buffer(data)));
    h.drain(order);
    return tags.map((t) => h.done.get(t));
  }

  for (const [name, order] of Object.entries(orders)) {
    it(`concurrent partial writes to one block are never lost (${name})`, () => {
      const d = h.device('d', '0 128 ebs a 0 1 8');
      const writes = [[1, sectorBytes(1, 11)], [3, sectorBytes(2, 22)], [6, sectorBytes(1, 33)], [9, sectorBytes(1, 44)]];
      expect(writeTogether(d, writes, order)).toEqual([0, 0, 0, 0]);
      const disk = h.disks.get(a);
      for (const [sector, data] of writes) expect(disk.subarray(sector * 512, sector * 512 + data.length)).toEqual(data);
      expect(disk.subarray(0, 512).every((x) => x === 0)).toBe(true);
      expect(misaligned).toEqual([]);
    });

    it(`a whole-block write racing a partial write to the same block keeps its other sectors (${name})`, () => {
      const d = h.device('d', '0 128 ebs a 0 1 8');
      const whole = sectorBytes(8, 60);
      const part = sectorBytes(1, 70);
      for (const writes of [[[0, whole], [2, part]], [[2, part], [0, whole]]]) {
        h.disks.get(a).fill(0);
        expect(writeTogether(d, writes, order)).toEqual([0, 0]);
        const got = h.disks.get(a).subarray(0, 8 * 512);
        // Either order is a valid outcome for the overlapping sector 2; every other sector is the whole write's.
        for (let s = 0; s < 8; s++) {
          if (s === 2) continue;
          expect(got.subarray(s * 512, (s + 1) * 512), `sector ${s}`).toEqual(whole.subarray(s * 512, (s + 1) * 512));
        }
        const s2 = got.subarray(2 * 512, 3 * 512);
        expect([whole.subarray(2 * 512, 3 * 512), part].some((x) => x.every((v, i) => v === s2[i]))).toBe(true);
      }
    });
  }

  it('batches of concurrent unaligned writes sharing blocks, completed in random interleavings, match the model', () => {
    const r = rng(99);
    const model = sectorBytes(64, 3);
    h.disks.get(a).set(model);
    const d = h.device('d', '0 64 ebs a 0 1 8');
    for (let batch = 0; batch < 60; batch++) {
      // Disjoint sector ranges inside 64 sectors: several share each 8-sector block.
      const cuts = [...new Set(Array.from({ length: 10 }, () => Math.floor(r() * 65)))].sort((x, y) => x - y);
      const writes = [];
      for (let i = 0; i + 1 < cuts.length; i += 2) if (cuts[i + 1] > cuts[i]) writes.push([cuts[i], sectorBytes(cuts[i + 1] - cuts[i], batch * 16 + i)]);
      const tags = writes.map(([sector, data]) => h.submit(d, OP.WRITE, sector, data.length / 512, h.buffer(data)));
      const pool = [];
      for (;;) {
        pool.push(...h.core.takeCommands());
        if (pool.length === 0) break;
        const [cmd] = pool.splice(Math.floor(r() * pool.length), 1);
        h.execute(cmd);
      }
      h.collect();
      expect(tags.map((t) => h.done.get(t))).toEqual(tags.map(() => 0));
      for (const [sector, data] of writes) model.set(data, sector * 512);
      expect(Buffer.from(h.disks.get(a).subarray(0, 64 * 512)).equals(Buffer.from(model)), `batch ${batch}`).toBe(true);
    }
    expect(misaligned).toEqual([]);
  });

  it('partial writes to different blocks are not serialised', () => {
    const d = h.device('d', '0 128 ebs a 0 1 8');
    h.submit(d, OP.WRITE, 1, 1, h.buffer(sectorBytes(1, 1)));
    h.submit(d, OP.WRITE, 17, 1, h.buffer(sectorBytes(1, 2)));
    const first = h.core.takeCommands();
    expect(first.map((c) => [c.op, c.sector])).toEqual([[OP.READ, 0], [OP.READ, 16]]);
    for (const c of first) h.execute(c);
    h.drain();
  });

  it('a second partial write to a block waits until the first one has written it', () => {
    const d = h.device('d', '0 128 ebs a 0 1 8');
    h.submit(d, OP.WRITE, 1, 1, h.buffer(sectorBytes(1, 1)));
    h.submit(d, OP.WRITE, 2, 1, h.buffer(sectorBytes(1, 2)));
    const first = h.core.takeCommands();
    expect(first.map((c) => [c.op, c.sector])).toEqual([[OP.READ, 0]]);
    h.execute(first[0]);
    const second = h.core.takeCommands();
    expect(second.map((c) => [c.op, c.sector])).toEqual([[OP.WRITE, 0]]);
    h.execute(second[0]);
    const third = h.core.takeCommands();
    expect(third.map((c) => [c.op, c.sector])).toEqual([[OP.READ, 0]]);
    h.execute(third[0]);
    h.drain();
  });
});
