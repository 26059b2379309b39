import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness } from './harness.js';
import { OP, FLAG } from '../../core-as/js/dmcore.js';

let h, a, b;
beforeEach(async () => {
  h = await newHarness();
  a = h.disk('a', 1000);
  b = h.disk('b', 1000);
});
const strip = (cmds) => cmds.map(({ backing, op, flags, sector, count }) => ({ backing, op, flags, sector, count }));

describe('splitting requests', () => {
  it('splits at segment boundaries, with buffer offsets following the sectors', () => {
    const d = h.device('d', '0 10 linear a 0\n10 10 linear b 500\n20 5 linear a 900');
    const buf = h.buffer(20 * 512);
    h.submit(d, OP.WRITE, 5, 18, buf, FLAG.FUA);
    const cmds = h.core.takeCommands();
    expect(strip(cmds)).toEqual([
      { backing: a, op: OP.WRITE, flags: FLAG.FUA, sector: 5, count: 5 },
      { backing: b, op: OP.WRITE, flags: FLAG.FUA, sector: 500, count: 10 },
      { backing: a, op: OP.WRITE, flags: FLAG.FUA, sector: 900, count: 3 },
    ]);
    expect(cmds.map((c) => c.buf - buf)).toEqual([0, 5 * 512, 15 * 512]);
  });

  it('splits reads and writes at stripe chunk boundaries (max_io_len)', () => {
    const d = h.device('d', '0 32 striped 2 8 a 0 b 0');
    h.submit(d, OP.READ, 6, 12, h.buffer(12 * 512));
    expect(strip(h.core.takeCommands())).toEqual([
      { backing: a, op: OP.READ, flags: 0, sector: 6, count: 2 },
      { backing: b, op: OP.READ, flags: 0, sector: 0, count: 8 },
      { backing: a, op: OP.READ, flags: 0, sector: 8, count: 2 },
    ]);
  });

  it('sends one range per stripe for discards, as stripe_map_range does', () => {
    const d = h.device('d', '0 64 striped 2 8 a 0 b 100');
    h.submit(d, OP.DISCARD, 4, 40); // sectors 4..44: chunks 0(a) 1(b) 2(a) 3(b) 4(a) 5(b, 4 sectors)
    expect(strip(h.core.takeCommands())).toEqual([
      { backing: a, op: OP.DISCARD, flags: 0, sector: 4, count: 20 },
      { backing: b, op: OP.DISCARD, flags: 0, sector: 100, count: 20 },
    ]);
  });

  it('skips stripes a small discard does not touch', () => {
    const d = h.device('d', '0 64 striped 4 8 a 0 b 0 a 200 b 200');
    h.submit(d, OP.WRITE_ZEROES, 9, 3);
    expect(strip(h.core.takeCommands())).toEqual([{ backing: b, op: OP.WRITE_ZEROES, flags: 0, sector: 1, count: 3 }]);
  });

  it('flushes each backing device once, whatever the number of segments and stripes', () => {
    const d = h.device('d', '0 10 linear a 0\n10 16 striped 2 4 a 100 b 0\n26 10 zero\n36 4 linear b 40');
    h.submit(d, OP.FLUSH, 0, 0);
    expect(strip(h.core.takeCommands())).toEqual([
      { backing: a, op: OP.FLUSH, flags: 0, sector: 0, count: 0 },
      { backing: b, op: OP.FLUSH, flags: 0, sector: 0, count: 0 },
    ]);
  });

  it('routes I/O to a stacked device through its table, never to the host', () => {
    h.device('lower', '0 20 striped 2 2 a 0 b 0');
    const top = h.device('top', '0 10 linear lower 5');
    h.submit(top, OP.READ, 0, 4, h.buffer(4 * 512)); // lower 5..8: chunk 2 (a), chunk 3 (b), chunk 4 (a)
    expect(strip(h.core.takeCommands())).toEqual([
      { backing: a, op: OP.READ, flags: 0, sector: 3, count: 1 },
      { backing: b, op: OP.READ, flags: 0, sector: 2, count: 2 },
      { backing: a, op: OP.READ, flags: 0, sector: 4, count: 1 },
    ]);
  });
});
