import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP, ERRNO } from '../../core-as/js/dmcore.js';

let h, a, b;
beforeEach(async () => {
  h = await newHarness();
  a = h.disk('a', 1000);
  b = h.disk('b', 1000);
});

describe('the I/O queue', () => {
  it('completes a request only when its last command completes, in any order', () => {
    const d = h.device('d', '0 64 striped 4 4 a 0 b 0 a 500 b 500');
    const buf = h.buffer(sectorBytes(64, 9));
    const tag = h.submit(d, OP.WRITE, 0, 64, buf);
    const cmds = h.core.takeCommands();
    expect(cmds.length).toBe(16);
    for (const c of cmds.slice().reverse().slice(0, 15)) { h.execute(c); h.collect(); }
    expect(h.done.has(tag)).toBe(false);
    h.execute(cmds[0]);
    h.collect();
    expect(h.done.get(tag)).toBe(0);
    expect(h.read(d, 0, 64).data).toEqual(sectorBytes(64, 9));
  });

  it('fails the whole request with the first error any command reports', () => {
    const d = h.device('d', '0 20 linear a 0\n20 20 linear b 0');
    const tag = h.submit(d, OP.READ, 10, 20, h.buffer(20 * 512));
    const [c1, c2] = h.core.takeCommands();
    h.execute(c2, ERRNO.ENOSPC);
    h.execute(c1, ERRNO.EIO);
    h.collect();
    expect(h.done.get(tag)).toBe(ERRNO.ENOSPC);
  });

  it('fails a request that touches an error segment, while other requests succeed', () => {
    const d = h.device('d', '0 10 linear a 0\n10 1 error\n11 10 linear b 0');
    expect(h.read(d, 5, 10).status).toBe(ERRNO.EIO);
    expect(h.read(d, 0, 10).status).toBe(0);
    expect(h.read(d, 11, 10).status).toBe(0);
  });

  it('keeps many requests in flight and matches completions to tags', () => {
    const d = h.device('d', '0 1000 linear a 0');
    const tags = [];
    for (let i = 0; i < 100; i++) tags.push(h.submit(d, OP.WRITE, i * 10, 10, h.buffer(sectorBytes(10, i))));
    expect(h.core.inflight(d)).toBe(100);
    const cmds = h.core.takeCommands();
    // complete odd ones with an error, in a scrambled order
    const order = cmds.map((c, i) => [((i * 37) % 101), c]).sort((x, y) => x[0] - y[0]).map((x) => x[1]);
    for (const c of order) h.execute(c, c.sector % 20 === 10 ? ERRNO.EIO : 0);
    h.collect();
    tags.forEach((t, i) => expect(h.done.get(t), `request ${i}`).toBe(i % 2 ? ERRNO.EIO : 0));
    expect(h.core.inflight(d)).toBe(0);
  });

  it('rejects at submit: out of range (EINVAL for reads, ENOSPC for writes), bad ops, no table', () => {
    const d = h.device('d', '0 100 linear a 0');
    expect(h.core.submit(d, OP.READ, 0, 99, 2, 0, 1)).toBe(-ERRNO.EINVAL);
    expect(h.core.submit(d, OP.DISCARD, 0, 101, 0, 0, 1)).toBe(-ERRNO.EINVAL);
    expect(h.core.submit(d, OP.WRITE, 0, 100, 1, 0, 1)).toBe(-ERRNO.ENOSPC);
    expect(h.core.submit(d, OP.WRITE_ZEROES, 0, 2n ** 63n, 1, 0, 1)).toBe(-ERRNO.ENOSPC);
    expect(h.core.message()).toContain('past the end of d');
    expect(h.core.submit(d, 7, 0, 0, 1, 0, 1)).toBe(-ERRNO.EINVAL);
    expect(h.core.submit(d, OP.WRITE, 2, 0, 1, 0, 1)).toBe(-ERRNO.EINVAL);
    expect(h.core.submit(99, OP.READ, 0, 0, 1, 0, 1)).toBe(-ERRNO.ENXIO);
    const empty = h.core.createDevice('empty');
    expect(h.core.submit(empty, OP.READ, 0, 0, 1, 0, 1)).toBe(-ERRNO.ENODEV);
    expect(h.core.takeCompletions()).toEqual([]);
  });

  it('completes zero-length requests at once, even at the very end', () => {
    const d = h.device('d', '0 100 linear a 0');
    const t1 = h.submit(d, OP.READ, 100, 0);
    const t2 = h.submit(d, OP.WRITE, 0, 0);
    expect(h.core.takeCommands()).toEqual([]);
    h.collect();
    expect([h.done.get(t1), h.done.get(t2)]).toEqual([0, 0]);
  });

  it('rejects completing a command twice or one never issued', () => {
    const d = h.device('d', '0 100 linear a 0');
    h.submit(d, OP.READ, 0, 1, h.buffer(512));
    const [c] = h.core.takeCommands();
    h.core.complete(c.cmd, 0);
    expect(() => h.core.complete(c.cmd, 0)).toThrow('no outstanding command');
    expect(() => h.core.complete(12345, 0)).toThrow('no outstanding command');
  });
});

describe('suspend, reload and resume', () => {
  it('holds new I/O while suspended and releases it at resume against the new table', () => {
    const d = h.device('d', '0 100 linear a 0');
    h.core.suspend(d);
    const tag = h.submit(d, OP.WRITE, 0, 2, h.buffer(sectorBytes(2, 5)));
    expect(h.core.takeCommands()).toEqual([]);
    h.core.loadTable(d, '0 100 linear b 200');
    expect(h.core.table(d)).toBe('0 100 linear a 0\n');
    expect(h.core.table(d, true)).toBe('0 100 linear b 200\n');
    expect(h.core.info(d)).toMatchObject({ state: 'SUSPENDED', hasInactive: true });
    h.core.resume(d);
    h.drain();
    expect(h.done.get(tag)).toBe(0);
    expect(h.disks.get(b).subarray(200 * 512, 202 * 512)).toEqual(sectorBytes(2, 5));
    expect(h.core.info(d)).toMatchObject({ state: 'ACTIVE', hasInactive: false });
  });

  it('lets requests already in flight finish against the old table after a reload', () => {
    const d = h.device('d', '0 100 linear a 0');
    const t1 = h.submit(d, OP.WRITE, 0, 1, h.buffer(sectorBytes(1, 1)));
    const old = h.core.takeCommands();
    h.core.loadTable(d, '0 50 linear b 0');
    h.core.resume(d);
    const t2 = h.submit(d, OP.WRITE, 0, 1, h.buffer(sectorBytes(1, 2)));
    expect(h.core.submit(d, OP.READ, 0, 60, 1, 0, 99)).toBe(-ERRNO.EINVAL); // the new size counts
    h.drain();
    for (const c of old) h.execute(c);
    h.collect();
    expect([h.done.get(t1), h.done.get(t2)]).toEqual([0, 0]);
    expect(h.disks.get(a)[0]).toBe(1);
    expect(h.disks.get(b)[0]).toBe(2);
  });

  it('fails held requests that no longer fit after a shrinking reload', () => {
    const d = h.device('d', '0 100 linear a 0');
    h.core.suspend(d);
    const tag = h.submit(d, OP.WRITE, 90, 1, h.buffer(512));
    h.core.loadTable(d, '0 50 linear a 0');
    h.core.resume(d);
    h.collect();
    expect(h.done.get(tag)).toBe(ERRNO.ENOSPC);
  });

  it('refuses to remove a device that is open, stacked on, or busy; and a backing device in use', () => {
    const d = h.device('d', '0 100 linear a 0');
    const top = h.device('top', '0 10 linear d 0');
    expect(() => h.core.removeDevice(d)).toThrow('used by 1 other table');
    expect(() => h.core.removeBacking(a)).toThrow('backing device a is used by 1 table');
    h.core.openDevice(top);
    expect(() => h.core.removeDevice(top)).toThrow('is busy: open 1 time');
    h.core.closeDevice(top);
    h.submit(top, OP.READ, 0, 1, h.buffer(512));
    expect(() => h.core.removeDevice(top)).toThrow('I/O in flight');
    h.drain();
    h.core.removeDevice(top);
    h.core.removeDevice(d);
    h.core.removeBacking(a);
    expect(h.core.listDevices()).toEqual([]);
  });

  it('propagates lower-device errors and holds stacked I/O while the lower device is suspended', () => {
    const lower = h.device('lower', '0 10 linear a 0\n10 10 error');
    const top = h.device('top', '0 20 linear lower 0');
    expect(h.read(top, 8, 4).status).toBe(ERRNO.EIO);
    h.core.suspend(lower);
    const tag = h.submit(top, OP.READ, 0, 2, h.buffer(1024));
    expect(h.core.takeCommands()).toEqual([]);
    h.core.resume(lower);
    h.drain();
    expect(h.done.get(tag)).toBe(0);
  });
});

describe('names', () => {
  it('refuses duplicate and malformed names, and lists devices', () => {
    h.device('d', '0 1 zero');
    expect(() => h.core.createDevice('d')).toThrow('device d already exists');
    expect(() => h.core.createDevice('a')).toThrow('a is the name of a backing device');
    expect(() => h.core.addBacking('d', 10)).toThrow('d is the name of a mapped device');
    expect(() => h.core.createDevice('has space')).toThrow('white space');
    expect(() => h.core.createDevice('')).toThrow('must not be empty');
    expect(() => h.core.findDevice('nope')).toThrow('device nope does not exist');
    expect(h.core.listDevices()).toEqual(['d']);
  });
});
