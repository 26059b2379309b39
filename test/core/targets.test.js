import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP, ERRNO } from '../../core-as/js/dmcore.js';

let h, a, b, c;
beforeEach(async () => {
  h = await newHarness();
  a = h.disk('a', 256);
  b = h.disk('b', 256);
  c = h.disk('c', 256);
});

/** Independent model of dm-stripe's mapping, one sector at a time. */
function stripeOf(sector, stripes, chunk) {
  const chunkNo = Math.floor(sector / chunk);
  return { stripe: chunkNo % stripes, sector: Math.floor(chunkNo / stripes) * chunk + (sector % chunk) };
}

describe('linear', () => {
  it('maps onto its device at the offset, and prints its table line', () => {
    const d = h.device('d', '0 16 linear a 100');
    expect(h.write(d, 2, sectorBytes(3, 7))).toBe(0);
    expect(h.disks.get(a).subarray(102 * 512, 105 * 512)).toEqual(sectorBytes(3, 7));
    expect(h.read(d, 2, 3).data).toEqual(sectorBytes(3, 7));
    expect(h.core.table(d)).toBe('0 16 linear a 100\n');
    expect(h.core.status(d)).toBe('0 16 linear \n');
  });
});

describe('striped', () => {
  for (const [stripes, chunk] of [[2, 4], [3, 2], [4, 8], [3, 3]]) {
    it(`${stripes} stripes of chunk ${chunk}: every sector lands where dm-stripe puts it`, () => {
      const len = stripes * chunk * 4;
      const devs = ['a', 'b', 'c', 'c'].slice(0, stripes);
      const offsets = [0, 10, 20, 200];
      const args = devs.map((n, i) => `${n} ${offsets[i]}`).join(' ');
      const d = h.device('d', `0 ${len} striped ${stripes} ${chunk} ${args}`);
      const data = sectorBytes(len, 3);
      expect(h.write(d, 0, data)).toBe(0);
      const ids = { a, b, c };
      for (let s = 0; s < len; s++) {
        const m = stripeOf(s, stripes, chunk);
        const disk = h.disks.get(ids[devs[m.stripe]]);
        const at = (offsets[m.stripe] + m.sector) * 512;
        expect(disk[at], `sector ${s}`).toBe((s + 3) & 255);
      }
      expect(h.read(d, 0, len).data).toEqual(data);
    });
  }

  it('prints table and status as Linux does, marking a stripe that saw errors D', () => {
    const d = h.device('d', '0 16 striped 2 4 a 8 b 0');
    expect(h.core.table(d)).toBe('0 16 striped 2 4 a 8 b 0\n');
    expect(h.core.status(d)).toBe('0 16 striped 2 a b 1 AA\n');
    const buf = h.buffer(512);
    const tag = h.submit(d, OP.READ, 4, 1, buf); // sector 4 is on stripe 1 (b)
    const [cmd] = h.core.takeCommands();
    h.execute(cmd, ERRNO.EIO);
    h.collect();
    expect(h.done.get(tag)).toBe(ERRNO.EIO);
    expect(h.core.status(d)).toBe('0 16 striped 2 a b 1 AD\n');
  });
});

describe('zero', () => {
  it('reads zeroes without any host I/O and drops writes', () => {
    const d = h.device('d', '0 64 zero');
    const buf = h.buffer(8 * 512);
    const tag = h.submit(d, OP.READ, 3, 8, buf);
    expect(h.core.takeCommands()).toEqual([]);
    h.collect();
    expect(h.done.get(tag)).toBe(0);
    expect(h.core.bytes(buf, 8 * 512).every((x) => x === 0)).toBe(true);
    expect(h.write(d, 0, sectorBytes(2))).toBe(0);
    expect(h.core.takeCommands()).toEqual([]);
    expect(h.core.table(d)).toBe('0 64 zero \n');
  });
});

describe('error', () => {
  it('fails reads, writes and discards with EIO; flushes succeed', () => {
    const d = h.device('d', '0 64 error');
    expect(h.read(d, 0, 1).status).toBe(ERRNO.EIO);
    expect(h.write(d, 0, sectorBytes(1))).toBe(ERRNO.EIO);
    const t1 = h.submit(d, OP.DISCARD, 0, 8);
    const t2 = h.submit(d, OP.FLUSH, 0, 0);
    h.drain();
    expect(h.done.get(t1)).toBe(ERRNO.EIO);
    expect(h.done.get(t2)).toBe(0);
  });
});
