import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness, sectorBytes } from './harness.js';
import { OP, FLAG, ERRNO } from '../../core-as/js/dmcore.js';

let h, a;
beforeEach(async () => {
  h = await newHarness();
  a = h.disk('a', 256);
});

/** Loads a one-line table into a fresh device and returns the error message (or '' on success). */
function loadError(args, len = 64) {
  const id = h.core.createDevice(`t${Math.random().toString(36).slice(2)}`);
  try {
    h.load(id, `0 ${len} flakey ${args}`);
    return '';
  } catch (err) {
    return err.message;
  }
}

/** Submits one request, runs it, returns its status. */
function io(dev, op, sector = 0, count = 0, flags = 0) {
  const buf = count ? h.buffer(count * 512) : 0;
  const tag = h.submit(dev, op, sector, count, buf, flags);
  h.settle();
  return h.done.get(tag);
}

describe('flakey ctr', () => {
  const cases = [
    ['a 0 1', /flakey: invalid argument count: expected <dev> <offset> <up interval> <down interval>.*got 3 arguments/],
    ['a x 1 1', /flakey: invalid device sector 'x'/],
    ['a 0 -1 1', /flakey: invalid up interval '-1'/],
    ['a 0 4294967296 1', /flakey: invalid up interval '4294967296'/],
    ['a 0 1 y', /flakey: invalid down interval 'y'/],
    ['a 0 0 0', /flakey: total \(up \+ down\) interval is zero/],
    ['a 0 4294967295 1', /flakey: interval overflow/],
    ['a 0 1 1 7', /flakey: invalid number of feature args '7' \(0-6\)/],
    ['a 0 1 1 z', /flakey: invalid number of feature args 'z'/],
    ['a 0 1 1 2 drop_writes', /flakey: not enough feature arguments: 2 announced, 1 given/],
    ['a 0 1 1 1 drop_writes extra', /flakey: unexpected arguments after the features: 'extra'/],
    ['a 0 1 1 2 error_reads error_reads', /flakey: feature error_reads duplicated/],
    ['a 0 1 1 2 drop_writes drop_writes', /flakey: feature drop_writes duplicated/],
    ['a 0 1 1 2 error_writes error_writes', /flakey: feature error_writes duplicated/],
    ['a 0 1 1 2 error_writes drop_writes', /flakey: feature drop_writes conflicts with feature error_writes/],
    ['a 0 1 1 2 drop_writes error_writes', /flakey: feature error_writes conflicts with feature drop_writes/],
    ['a 0 1 1 3 corrupt_bio_byte 1 r', /flakey: feature corrupt_bio_byte requires 4 parameters/],
    ['a 0 1 1 10 corrupt_bio_byte 1 r 1 0 corrupt_bio_byte 2 r 1 0', /flakey: invalid number of feature args '10' \(0-6\)/],
    ['a 0 1 1 6 corrupt_bio_byte 1 r 1 0 corrupt_bio_byte', /flakey: feature corrupt_bio_byte duplicated/],
    ['a 0 1 1 5 corrupt_bio_byte 0 r 1 0', /flakey: invalid corrupt bio byte '0'/],
    ['a 0 1 1 5 corrupt_bio_byte q r 1 0', /flakey: invalid corrupt bio byte 'q'/],
    ['a 0 1 1 5 corrupt_bio_byte 1 x 1 0', /flakey: invalid corrupt bio direction 'x' \(r or w\)/],
    ['a 0 1 1 5 corrupt_bio_byte 1 r 256 0', /flakey: invalid corrupt value '256'/],
    ['a 0 1 1 5 corrupt_bio_byte 1 r 1 4294967296', /flakey: invalid corrupt bio flags mask '4294967296'/],
    ['a 0 1 1 1 random_read_corrupt', /flakey: unrecognised flakey feature 'random_read_corrupt'/],
    ['a 0 1 1 6 drop_writes corrupt_bio_byte 1 w 1 0', /flakey: drop_writes is incompatible with corrupt_bio_byte with the WRITE flag set/],
    ['a 0 1 1 6 error_writes corrupt_bio_byte 1 w 1 0', /flakey: error_writes is incompatible with corrupt_bio_byte with the WRITE flag set/],
    ['a 0 1 1 6 error_reads corrupt_bio_byte 1 r 1 0', /flakey: error_reads is incompatible with corrupt_bio_byte with the READ flag set/],
    ['nosuch 0 1 1', /flakey: unknown device nosuch/],
    ['a 200 1 1', /flakey: device a is too small/],
  ];
  for (const [args, message] of cases) {
    it(`rejects '${args}'`, () => {
      expect(loadError(args)).toMatch(message);
    });
  }

  it('accepts every feature, in any case, and prints the table as Linux 6.1 does (trailing space)', () => {
    const d = h.device('d', '0 64 flakey a 8 3 4');
    expect(h.core.table(d)).toBe('0 64 flakey a 8 3 4 0 \n');
    expect(h.core.status(d)).toBe('0 64 flakey \n');
    const e = h.device('e', '0 64 flakey a 0 1 2 6 Corrupt_Bio_Byte 32 W 9 0 ERROR_READS');
    expect(h.core.table(e)).toBe('0 64 flakey a 0 1 2 6 error_reads corrupt_bio_byte 32 w 9 0 \n');
    const r = h.device('r', '0 64 flakey a 0 1 2 6 drop_writes corrupt_bio_byte 32 r 9 0');
    expect(h.core.table(r)).toBe('0 64 flakey a 0 1 2 6 drop_writes corrupt_bio_byte 32 r 9 0 \n');
    const f = h.device('f', '0 64 flakey a 0 1 2 1 error_writes');
    expect(h.core.table(f)).toBe('0 64 flakey a 0 1 2 1 error_writes \n');
    const g = h.device('g', '0 64 flakey a 0 1 2 5 corrupt_bio_byte 1 w 0 131072');
    expect(h.core.table(g)).toBe('0 64 flakey a 0 1 2 5 corrupt_bio_byte 1 w 0 131072 \n');
    const z = h.device('z', '0 64 flakey a 0 1 2 0');
    expect(h.core.table(z)).toBe('0 64 flakey a 0 1 2 0 \n');
  });
});

describe('flakey schedule', () => {
  it('is up for <up> seconds then down for <down> seconds, counted from table load', () => {
    h.setTime(5000);
    const d = h.device('d', '0 64 flakey a 0 2 1');
    const at = (ms) => { h.setTime(5000 + ms); return io(d, OP.READ, 0, 1); };
    expect(at(0)).toBe(0);
    expect(at(1999)).toBe(0);
    expect(at(2000)).toBe(ERRNO.EIO);
    expect(at(2999)).toBe(ERRNO.EIO);
    expect(at(3000)).toBe(0);
    expect(at(5000)).toBe(ERRNO.EIO); // second cycle: down during [5 s, 6 s)
    expect(at(6000)).toBe(0);
  });

  it('with no features, fails reads, writes, flushes and discards while down and lets them through while up', () => {
    const d = h.device('d', '0 64 flakey a 0 1 1');
    expect(h.write(d, 0, sectorBytes(2, 5))).toBe(0);
    h.setTime(1000);
    expect(io(d, OP.READ, 0, 1)).toBe(ERRNO.EIO);
    expect(h.write(d, 0, sectorBytes(2, 9))).toBe(ERRNO.EIO);
    expect(io(d, OP.FLUSH)).toBe(ERRNO.EIO);
    expect(io(d, OP.DISCARD, 0, 2)).toBe(ERRNO.EIO);
    expect(h.disks.get(a).subarray(0, 1024)).toEqual(sectorBytes(2, 5));
    h.setTime(2000);
    expect(h.read(d, 0, 2)).toEqual({ status: 0, data: sectorBytes(2, 5) });
    expect(io(d, OP.FLUSH)).toBe(0);
  });

  it('an up interval of 0 is always down', () => {
    const d = h.device('d', '0 64 flakey a 0 0 5');
    expect(io(d, OP.READ, 0, 1)).toBe(ERRNO.EIO);
    h.setTime(123456);
    expect(io(d, OP.READ, 0, 1)).toBe(ERRNO.EIO);
  });

  it('maps at the offset like linear while up', () => {
    const d = h.device('d', '0 64 flakey a 100 5 5');
    expect(h.write(d, 3, sectorBytes(2, 7))).toBe(0);
    expect(h.disks.get(a).subarray(103 * 512, 105 * 512)).toEqual(sectorBytes(2, 7));
  });

  it('does not take WRITE_ZEROES, as Linux flakey does not', () => {
    const d = h.device('d', '0 64 flakey a 0 5 5');
    expect(io(d, OP.WRITE_ZEROES, 0, 8)).toBe(ERRNO.EOPNOTSUPP);
  });
});

describe('flakey features while down', () => {
  beforeEach(() => { h.disks.get(a).set(sectorBytes(8, 40)); });

  it('error_reads: reads fail, writes land', () => {
    const d = h.device('d', '0 64 flakey a 0 1 1 1 error_reads');
    h.setTime(1500);
    expect(io(d, OP.READ, 0, 1)).toBe(ERRNO.EIO);
    expect(h.write(d, 1, sectorBytes(1, 3))).toBe(0);
    expect(h.disks.get(a).subarray(512, 1024)).toEqual(sectorBytes(1, 3));
  });

  it('drop_writes: writes succeed without reaching the device, reads work', () => {
    const d = h.device('d', '0 64 flakey a 0 1 1 1 drop_writes');
    h.setTime(1000);
    expect(h.write(d, 0, sectorBytes(2, 99))).toBe(0);
    expect(h.core.takeCommands()).toEqual([]);
    expect(h.disks.get(a).subarray(0, 1024)).toEqual(sectorBytes(2, 40));
    expect(h.read(d, 0, 2)).toEqual({ status: 0, data: sectorBytes(2, 40) });
    expect(io(d, OP.FLUSH)).toBe(0);
  });

  it('error_writes: writes fail without reaching the device, reads work', () => {
    const d = h.device('d', '0 64 flakey a 0 1 1 1 error_writes');
    h.setTime(1000);
    expect(h.write(d, 0, sectorBytes(2, 99))).toBe(ERRNO.EIO);
    expect(h.disks.get(a).subarray(0, 1024)).toEqual(sectorBytes(2, 40));
    expect(h.read(d, 0, 2)).toEqual({ status: 0, data: sectorBytes(2, 40) });
  });

  it('corrupt_bio_byte w: byte N of each write reaches the device as <value>; the caller\'s buffer is left intact', () => {
    const d = h.device('d', '0 64 flakey a 0 1 1 5 corrupt_bio_byte 600 w 7 0');
    const data = sectorBytes(2, 11);
    expect(h.write(d, 0, data)).toBe(0); // up: untouched
    expect(h.disks.get(a).subarray(0, 1024)).toEqual(data);
    h.setTime(1000);
    const buf = h.buffer(data);
    const tag = h.submit(d, OP.WRITE, 2, 2, buf);
    h.settle();
    expect(h.done.get(tag)).toBe(0);
    const expected = data.slice();
    expected[599] = 7;
    expect(h.disks.get(a).subarray(1024, 2048)).toEqual(expected);
    expect(h.core.bytes(buf, 1024)).toEqual(data);
    expect(h.write(d, 4, sectorBytes(1, 11))).toBe(0); // byte 600 is past a 1-sector write
    expect(h.disks.get(a).subarray(2048, 2560)).toEqual(sectorBytes(1, 11));
  });

  it('corrupt_bio_byte r: successful reads come back with byte N replaced, the device keeps its data', () => {
    const d = h.device('d', '0 64 flakey a 0 1 1 5 corrupt_bio_byte 1 r 255 0');
    expect(h.read(d, 0, 1).data).toEqual(sectorBytes(1, 40));
    h.setTime(1000);
    const expected = sectorBytes(1, 40);
    expected[0] = 255;
    expect(h.read(d, 0, 1)).toEqual({ status: 0, data: expected });
    expect(h.disks.get(a).subarray(0, 512)).toEqual(sectorBytes(1, 40));
    expect(h.write(d, 0, sectorBytes(1, 2))).toBe(0); // writes pass unchanged with direction r
    expect(h.disks.get(a).subarray(0, 512)).toEqual(sectorBytes(1, 2));
  });

  it('corrupt_bio_byte flags: only requests whose kernel bi_opf has every bit (131072 is REQ_FUA)', () => {
    const d = h.device('d', '0 64 flakey a 0 1 1 5 corrupt_bio_byte 1 w 0 131072');
    h.setTime(1000);
    expect(h.write(d, 0, sectorBytes(1, 5))).toBe(0);
    expect(h.disks.get(a)[0]).toBe(5);
    expect(h.write(d, 1, sectorBytes(1, 5), FLAG.FUA)).toBe(0);
    expect(h.disks.get(a)[512]).toBe(0);
    expect(h.disks.get(a).subarray(513, 1024)).toEqual(sectorBytes(1, 5).subarray(1));
  });

  it('a failed read is not corrupted, it stays an error', () => {
    const d = h.device('d', '0 64 flakey a 0 1 1 5 corrupt_bio_byte 1 r 255 0');
    h.setTime(1000);
    const buf = h.buffer(512);
    const tag = h.submit(d, OP.READ, 0, 1, buf);
    const [cmd] = h.core.takeCommands();
    h.execute(cmd, ERRNO.EIO);
    h.collect();
    expect(h.done.get(tag)).toBe(ERRNO.EIO);
    expect(h.core.bytes(buf, 1)[0]).toBe(0xee);
  });
});
