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

function loadError(args, len = 64) {
  const id = h.core.createDevice(`t${Math.random().toString(36).slice(2)}`);
  try {
    h.load(id, `0 ${len} delay ${args}`);
    return '';
  } catch (err) {
    return err.message;
  }
}

/** Submits without running anything; returns the tag. */
function submit(dev, op, sector = 0, count = 0) {
  return h.submit(dev, op, sector, count, count ? h.buffer(count * 512) : 0);
}

/** Commands the core has for the host right now, executed; returns them as "OP backing sector+count". */
function runNow() {
  const seen = [];
  for (;;) {
    const cmds = h.core.takeCommands();
    h.collect();
    if (cmds.length === 0) return seen;
    for (const cmd of cmds) {
      seen.push(`${['READ', 'WRITE', 'FLUSH', 'DISCARD', 'WRITE_ZEROES'][cmd.op]} ${cmd.backing} ${cmd.sector}+${cmd.count}`);
      h.execute(cmd);
    }
    h.collect();
  }
}

describe('delay ctr', () => {
  const cases = [
    ['a 0', /delay: requires exactly 3, 6 or 9 arguments: .* got 2/],
    ['a 0 1 b 0', /delay: requires exactly 3, 6 or 9 arguments: .* got 5/],
    ['a x 1', /delay: invalid device sector 'x'/],
    ['a 0 -5', /delay: invalid delay '-5' \(milliseconds, 0-4294967295\)/],
    ['a 0 4294967296', /delay: invalid delay '4294967296'/],
    ['nosuch 0 1', /delay: unknown device nosuch/],
    ['a 200 1', /delay: device a is too small/],
    ['a 0 1 b y 1', /delay: invalid write device sector 'y'/],
    ['a 0 1 b 0 1.5', /delay: invalid write delay '1.5'/],
    ['a 0 1 nosuch 0 1', /delay: write device: unknown device nosuch/],
    ['a 0 1 b 0 1 c z 1', /delay: invalid flush device sector 'z'/],
    ['a 0 1 b 0 1 c 0 q', /delay: invalid flush delay 'q'/],
    ['a 0 1 b 0 1 c 250 1', /delay: flush device: device c is too small/],
  ];
  for (const [args, message] of cases) {
    it(`rejects '${args}'`, () => {
      expect(loadError(args)).toMatch(message);
    });
  }

  it('prints 3, 6 and 9 argument tables as given, and held counts per class as status', () => {
    expect(h.core.table(h.device('d3', '0 64 delay a 8 100'))).toBe('0 64 delay a 8 100\n');
    expect(h.core.table(h.device('d6', '0 64 delay a 8 100 b 16 0'))).toBe('0 64 delay a 8 100 b 16 0\n');
    const d9 = h.device('d9', '0 64 delay a 8 100 b 16 0 c 0 7');
    expect(h.core.table(d9)).toBe('0 64 delay a 8 100 b 16 0 c 0 7\n');
    expect(h.core.status(d9)).toBe('0 64 delay 0 0 0\n');
  });
});

describe('delay holding and releasing', () => {
  it('holds a request until the clock reaches arrival + delay, then sends it on', () => {
    h.setTime(1000);
    const d = h.device('d', '0 64 delay a 10 250');
    const tag = submit(d, OP.READ, 2, 1);
    expect(runNow()).toEqual([]);
    expect(h.core.status(d)).toBe('0 64 delay 1 0 0\n');
    expect(h.core.nextTimer()).toBe(1250);
    h.core.setTime(1249);
    expect(runNow()).toEqual([]);
    h.core.setTime(1250);
    expect(runNow()).toEqual([`READ ${a} 12+1`]);
    expect(h.done.get(tag)).toBe(0);
    expect(h.core.status(d)).toBe('0 64 delay 0 0 0\n');
    expect(h.core.nextTimer()).toBe(-1);
  });

  it('a delay of 0 sends at once', () => {
    const d = h.device('d', '0 64 delay a 0 0');
    submit(d, OP.WRITE, 0, 1);
    expect(runNow()).toEqual([`WRITE ${a} 0+1`]);
  });

  it('releases what is due in arrival order, and the rest at their own deadlines', () => {
    const d = h.device('d', '0 64 delay a 0 50 a 100 100');
    submit(d, OP.WRITE, 1, 1); // due 100
    h.core.setTime(10);
    submit(d, OP.READ, 2, 1); // due 60
    submit(d, OP.WRITE, 3, 1); // due 110
    submit(d, OP.READ, 4, 1); // due 60
    expect(h.core.status(d)).toBe('0 64 delay 2 2 0\n');
    expect(h.core.nextTimer()).toBe(60);
    h.core.setTime(60);
    expect(runNow()).toEqual([`READ ${a} 2+1`, `READ ${a} 4+1`]);
    expect(h.core.nextTimer()).toBe(100);
    h.core.setTime(500); // one late tick releases the rest, oldest first
    expect(runNow()).toEqual([`WRITE ${a} 101+1`, `WRITE ${a} 103+1`]);
  });

  it('the clock never goes back', () => {
    const d = h.device('d', '0 64 delay a 0 100');
    h.core.setTime(50);
    submit(d, OP.READ, 0, 1); // due 150
    h.core.setTime(10);
    expect(h.core.nextTimer()).toBe(150);
    h.core.setTime(149);
    expect(runNow()).toEqual([]);
    h.core.setTime(150);
    expect(runNow()).toHaveLength(1);
  });

  it('with 6 arguments, writes and discards (and flushes) use the write class; reads the read class', () => {
    const d = h.device('d', '0 64 delay a 0 0 b 32 40');
    const data = sectorBytes(2, 3);
    expect(h.write(d, 4, data)).toBe(0);
    expect(h.disks.get(b).subarray(36 * 512, 38 * 512)).toEqual(data);
    h.disks.get(a).set(sectorBytes(2, 8), 4 * 512);
    expect(h.read(d, 4, 2).data).toEqual(sectorBytes(2, 8));
    submit(d, OP.FLUSH);
    submit(d, OP.DISCARD, 0, 8);
    expect(h.core.status(d)).toBe('0 64 delay 0 1 1\n');
    h.core.setTime(1000);
    expect(runNow()).toEqual([`FLUSH ${b} 0+0`, `DISCARD ${b} 32+8`]);
  });

  it('with 9 arguments, flushes have their own device and delay', () => {
    const d = h.device('d', '0 64 delay a 0 0 b 0 0 c 0 30');
    submit(d, OP.FLUSH);
    submit(d, OP.WRITE, 0, 1);
    expect(runNow()).toEqual([`WRITE ${b} 0+1`]);
    expect(h.core.status(d)).toBe('0 64 delay 0 0 1\n');
    h.core.setTime(30);
    expect(runNow()).toEqual([`FLUSH ${c} 0+0`]);
  });

  it('suspend releases everything held at once (delay_presuspend), and new I/O waits for resume', () => {
    const d = h.device('d', '0 64 delay a 0 5000');
    const t1 = submit(d, OP.READ, 0, 1);
    const t2 = submit(d, OP.WRITE, 1, 1);
    h.core.suspend(d);
    expect(runNow()).toEqual([`READ ${a} 0+1`, `WRITE ${a} 1+1`]);
    expect([h.done.get(t1), h.done.get(t2)]).toEqual([0, 0]);
    expect(h.core.inflight(d)).toBe(0);
    expect(h.core.nextTimer()).toBe(-1);
    const t3 = submit(d, OP.READ, 2, 1);
    h.core.resume(d);
    expect(runNow()).toEqual([]);
    h.core.setTime(5000);
    expect(runNow()).toEqual([`READ ${a} 2+1`]);
    expect(h.done.get(t3)).toBe(0);
  });

  it('a reload swapped in without a suspend first releases the old table\'s held I/O', () => {
    const d = h.device('d', '0 64 delay a 0 5000');
    const t1 = submit(d, OP.READ, 0, 1);
    h.load(d, '0 64 linear b 0');
    h.core.resume(d);
    expect(runNow()).toEqual([`READ ${a} 0+1`]);
    expect(h.done.get(t1)).toBe(0);
  });

  it('removing the table of a held request is refused until it is released', () => {
    const d = h.device('d', '0 64 delay a 0 100');
    submit(d, OP.READ, 0, 1);
    expect(() => h.core.removeDevice(d)).toThrow(/I\/O in flight/);
    h.settle();
    h.core.removeDevice(d);
  });

  it('stacked delays add up', () => {
    const lower = h.device('lower', '0 64 delay a 0 100');
    const upper = h.device('upper', '0 64 delay lower 0 30');
    const tag = submit(upper, OP.READ, 0, 1);
    h.core.setTime(30);
    expect(runNow()).toEqual([]);
    expect(h.core.status(lower)).toBe('0 64 delay 1 0 0\n');
    expect(h.core.nextTimer()).toBe(130);
    h.core.setTime(130);
    expect(runNow()).toEqual([`READ ${a} 0+1`]);
    expect(h.done.get(tag)).toBe(0);
  });

  it('does not take WRITE_ZEROES, as Linux delay does not', () => {
    const d = h.device('d', '0 64 delay a 0 10');
    const tag = submit(d, OP.WRITE_ZEROES, 0, 8);
    h.settle();
    expect(h.done.get(tag)).toBe(ERRNO.EOPNOTSUPP);
  });
});
