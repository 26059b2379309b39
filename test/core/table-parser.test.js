import { describe, it, expect, beforeEach } from 'vitest';
import { newHarness } from './harness.js';

/** Loads a table into a fresh device and returns the error message ('' on success). */
let h;
beforeEach(async () => {
  h = await newHarness();
  h.disk('a', 1000);
  h.disk('b', 1000);
});
function load(table) {
  const id = h.core.createDevice('t' + Math.random().toString(36).slice(2, 8));
  try { h.core.loadTable(id, table); return ''; } catch (e) { return e.message; }
}

describe('table parser rejects, naming the line and the problem', () => {
  const cases = [
    ['', 'table is empty'],
    ['# only a comment\n\n', 'table is empty'],
    ['0 100', 'line 1: expected <start> <length> <target>'],
    ['x 100 zero', "line 1: invalid start sector 'x'"],
    ['-1 100 zero', "line 1: invalid start sector '-1'"],
    ['0 1e3 zero', "line 1: invalid length '1e3'"],
    ['0 18446744073709551616 zero', "line 1: invalid length '18446744073709551616'"],
    ['0 0 zero', 'line 1: zero-length segment'],
    ['5 100 zero', 'line 1: the first segment must start at sector 0, not 5'],
    ['0 100 zero\n101 10 zero', 'line 2: segment starts at 101 but the previous one ends at 100'],
    ['0 100 zero\n99 10 zero', 'line 2: segment starts at 99 but the previous one ends at 100'],
    ['0 18446744073709551615 zero\n18446744073709551615 1 zero', 'line 2: segment end passes 2^64 sectors'],
    ['0 100 frobnicate', "line 1: unknown target type 'frobnicate'"],
    ['0 100 zero 1', 'line 1: zero: no arguments required, got 1'],
    ['0 100 linear a', 'line 1: linear: invalid argument count'],
    ['0 100 linear a 0 9', 'line 1: linear: invalid argument count'],
    ['0 100 linear a +5', "line 1: linear: invalid device sector '+5'"],
    ['0 100 linear nosuch 0', 'line 1: linear: unknown device nosuch'],
    ['0 100 linear a 901', 'line 1: linear: device a is too small: the mapping needs sectors 901-1001, the device has 1000'],
    ['0 10 striped 2', 'line 1: striped: not enough arguments'],
    ['0 10 striped 0 2 a 0', "line 1: striped: invalid stripe count '0'"],
    ['0 10 striped two 2 a 0', "line 1: striped: invalid stripe count 'two'"],
    ['0 10 striped 2 0 a 0 b 0', "line 1: striped: invalid chunk_size '0'"],
    ['0 10 striped 2 4294967296 a 0 b 0', "line 1: striped: invalid chunk_size '4294967296'"],
    ['0 9 striped 2 1 a 0 b 0', 'line 1: striped: target length 9 is not divisible by the number of stripes (2)'],
    ['0 12 striped 2 4 a 0 b 0', 'line 1: striped: target length 12 is not divisible by chunk size 4'],
    ['0 16 striped 2 4 a 0', 'line 1: striped: not enough destinations specified: 2 stripes need 4 arguments'],
    ['0 16 striped 2 4 a 0 b 0 c', 'line 1: striped: not enough destinations specified'],
    ['0 16 striped 2 4 a 0 b x', "line 1: striped: stripe 1: invalid device sector 'x'"],
    ['0 16 striped 2 4 a 0 b 993', 'line 1: striped: stripe 1: device b is too small'],
    ['\n# comment\n0 10 zero\n\n10 5 bogus', "line 5: unknown target type 'bogus'"],
  ];
  for (const [table, message] of cases) {
    it(`${JSON.stringify(table)} -> ${message}`, () => {
      expect(load(table)).toContain(message);
    });
  }
});

describe('table parser accepts', () => {
  it('comments, blank lines, tabs and CRLF', () => {
    expect(load('# disk\n0\t100 linear a 0\r\n\n100 50   zero\n')).toBe('');
  });
  it('the largest 64-bit lengths for zero', () => {
    expect(load('0 18446744073709551615 zero')).toBe('');
  });
  it('non-power-of-two stripe counts and chunk sizes, as Linux does since 3.x', () => {
    expect(load('0 36 striped 3 6 a 0 b 0 a 500')).toBe('');
  });
  it('the error target with any arguments (the kernel ignores them)', () => {
    expect(load('0 10 error whatever 1 2')).toBe('');
  });
});

describe('stacked tables', () => {
  it('refuse a lower device without a live table', () => {
    h.core.createDevice('lower');
    expect(load('0 10 linear lower 0')).toContain('line 1: linear: device lower has no live table');
  });
  it('refuse a mapping past the lower device end', () => {
    h.device('lower', '0 10 zero');
    expect(load('0 11 linear lower 0')).toContain('device lower is too small');
  });
  it('refuse cycles, directly and through other devices', () => {
    const x = h.device('x', '0 10 zero');
    h.device('y', '0 10 linear x 0');
    expect(() => h.core.loadTable(x, '0 10 linear x 0')).toThrow('would stack on itself');
    expect(() => h.core.loadTable(x, '0 10 linear y 0')).toThrow('would stack on itself');
  });
});

describe('tableDeps', () => {
  it('lists host device names once each, not mapped devices', () => {
    h.device('m', '0 10 zero');
    expect(h.core.tableDeps('0 10 linear x.img 0\n10 8 striped 2 2 y.img 0 x.img 5\n18 10 linear m 0')).toEqual(['x.img', 'y.img']);
  });
  it('still reports syntax errors', () => {
    expect(() => h.core.tableDeps('0 10 linear x.img')).toThrow('line 1: linear: invalid argument count');
  });
});
