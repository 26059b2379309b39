// @ts-check
// The reference model agrees with every golden vector, hand-derived ones included, and the
// vector tooling itself behaves: the PRNG gives the spec's bytes, the parser names file:line,
// and a wrong expectation is caught (by the model here, by the driver in the runners).
import { describe, it, expect } from 'vitest';
import { loadVectors } from './lib/load.js';
import { parseVector } from './lib/parse.js';
import { pattern } from './lib/pattern.js';
import { disagreements, fillIn } from './model/check.js';

const vectors = await loadVectors();

describe('pattern()', () => {
  it('gives the bytes docs/vectors.md lists for pattern(1, 8)', () => {
    expect(Buffer.from(pattern(1, 8)).toString('hex')).toBe('f3ea87a0c949b300');
  });
  it('truncates the last word', () => {
    expect(Buffer.from(pattern(1, 5)).toString('hex')).toBe('f3ea87a0c9');
    expect(pattern(7, 0).length).toBe(0);
  });
});

describe('the reference model agrees with every vector', () => {
  it('has vectors to check', () => expect(vectors.length).toBeGreaterThan(0));
  for (const v of vectors) {
    it(v.name, () => expect(disagreements(v)).toEqual([]));
  }
});

describe('the model catches wrong expectations', () => {
  const text = [
    'about a linear write reads back',
    'derived model',
    'disk d 16',
    'table a 0 16 linear d 0',
    'create a',
    'write a 0 8 seed 1',
    'read a 0 8 => ?',
    'hash d => ?',
    'status a => ?',
  ].join('\n');
  const filled = fillIn(text, parseVector(text, 'x.vec', { allowUnfilled: true })).text;

  it('fills in placeholders with answers the model then agrees with', () => {
    expect(filled).not.toContain('?');
    expect(disagreements(parseVector(filled, 'x.vec'))).toEqual([]);
  });
  it('flags a changed hash', () => {
    const wrong = filled.replace(/(read a 0 8 => sha256:)(.)/, (_, head, c) => head + (c === '0' ? '1' : '0'));
    expect(disagreements(parseVector(wrong, 'x.vec'))).toHaveLength(1);
  });
  it('flags a changed status line and a wrong errno', () => {
    const wrong = filled.replace('status a => 0 16 linear', 'status a => 0 16 linear d 0').replace('create a', 'create a => EINVAL');
    expect(disagreements(parseVector(wrong, 'x.vec'))).toHaveLength(2);
  });
});

describe('the parser', () => {
  const parse = (/** @type {string} */ body) => parseVector(`about x\nderived hand\n${body}`, 'cases/t.vec');
  it('names file and line', () => {
    expect(() => parse('disk d 8\nwirte d 0 1 seed 1')).toThrow('cases/t.vec:4: unknown statement');
  });
  it('rejects I/O on a name that is no device', () => {
    expect(() => parse('disk d 8\nread d 0 1')).toThrow("cases/t.vec:4: read: 'd' is not a device");
  });
  it('rejects a disk after other statements, unclosed blocks and unused table lines', () => {
    expect(() => parse('table a 0 8 zero\ncreate a\ndisk d 8')).toThrow(':5: disk: disks are declared before');
    expect(() => parse('table a 0 8 zero\ncreate a\nbegin\nread a 0 1')).toThrow(':5: begin: block is never closed');
    expect(() => parse('table a 0 8 zero\ncreate a\ntable a 0 8 error')).toThrow(':5: table: lines for');
  });
  it('rejects unfilled expectations unless asked', () => {
    expect(() => parse('table a 0 8 zero\ncreate a\nread a 0 1 => ?')).toThrow('not filled in');
  });
  it('keeps # literal in status text and messages, and marks table references', () => {
    const v = parse('disk d 8\ntable a 0 8 linear d 0 # comment\ncreate a => EINVAL a: bad # really\nstatus a => 0 8 x # y');
    const [create, status] = v.steps;
    expect(create.expect).toEqual({ kind: 'errno', errno: 'EINVAL', message: 'a: bad # really' });
    expect(status.expect).toEqual({ kind: 'text', text: '0 8 x # y' });
    expect(create.table[0].refs).toEqual([null, null, null, 'disk', null]);
  });
  it('takes kernel-log with a text, never unfilled, without arguments, nor inside a block', () => {
    const v = parse('table a 0 8 zero\ncreate a\nkernel-log => Invalidating snapshot: Error reading/writing. | x');
    expect(v.steps[1].expect).toEqual({ kind: 'text', text: 'Invalidating snapshot: Error reading/writing. | x' });
    expect(() => parse('kernel-log')).toThrow(':3: kernel-log: needs an expectation');
    expect(() => parse('kernel-log a => x')).toThrow(':3: kernel-log: expected 0 argument(s), got 1');
    expect(() => parseVector('about x\nderived model\nkernel-log => ?', 't.vec', { allowUnfilled: true })).toThrow('not allowed here');
    expect(() => parse('table a 0 8 zero\ncreate a\nbegin\nread a 0 1\nkernel-log => x\nend')).toThrow(':7: kernel-log: not allowed inside a begin/end block');
  });
  it('groups begin/end blocks', () => {
    const v = parse('table a 0 8 zero\ncreate a\nbegin\nread a 0 1\nread a 1 1\nend');
    expect(v.steps[1].op).toBe('group');
    expect(v.steps[1].steps.map((s) => s.line)).toEqual([6, 7]);
  });
});
