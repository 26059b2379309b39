// @ts-check
// The core runner fails when it should: a wrong expectation, a rule broken on the backing
// devices (`aligned`), and results that depend on completion order, which it exercises by
// running every vector in FIFO, reversed and shuffled command order.
import { describe, it, expect } from 'vitest';
import { parseVector } from './lib/parse.js';
import { setup, runVector, CoreHost, ORDERS } from './runners/core.js';
import { driveVector } from './lib/drive.js';

const context = await setup();
const run = (/** @type {string} */ body) => runVector(parseVector(`about t\nderived hand\n${body}`, 't.vec'), context);

describe('the core runner', () => {
  // pattern(1, 4096) | sha256sum
  const P1 = '81c44ae73b24a71fcda630488fc1b2def2ebb5a7b4e522d3357024f3365359a6';

  it('passes a correct vector', async () => {
    expect(await run(`disk d 16\ntable a 0 16 linear d 0\ncreate a\nwrite a 0 8 seed 1\nread a 0 8 => sha256:${P1}`))
      .toEqual({ status: 'pass', skippedStatements: 0 });
  });

  it('fails a wrong hash, naming the line', async () => {
    const r = await run(`disk d 16\ntable a 0 16 linear d 0\ncreate a\nwrite a 0 8 seed 2\nread a 0 8 => sha256:${P1}`);
    expect(r.status).toBe('fail');
    expect(r.detail).toContain('line 7: read a 0 8');
  });

  it('fails a wrong errno and a wrong message', async () => {
    expect((await run('disk d 16\ntable a 0 32 linear d 0\ncreate a => EIO')).detail).toContain('expected EIO, got EINVAL');
    expect((await run('disk d 16\ntable a 0 32 linear d 0\ncreate a => EINVAL nope')).detail).toContain("expected message 'nope'");
  });

  it('fails a write that reaches an aligned disk unaligned', async () => {
    const r = await run('disk d 16\naligned d 8\ntable a 0 16 linear d 0\ncreate a\nwrite a 4 8 seed 1');
    expect(r.status).toBe('fail');
    expect(r.detail).toContain('not aligned to 8 sectors');
  });

  it('runs commands in more than one order: overlapping writes in a block end differently', async () => {
    // pattern(2, 4096) | sha256sum: what FIFO execution leaves; reversed execution leaves seed 1
    const P2 = '7d6a1dd9d9ad07709f5b2348f4178afab896c53c501aa1a2aefbe6e49dab91ac';
    const r = await run(`disk d 16\ntable a 0 16 linear d 0\ncreate a\nbegin\nwrite a 0 8 seed 1\nwrite a 0 8 seed 2\nend\nread a 0 8 => sha256:${P2}`);
    expect(r.status).toBe('fail');
    expect(r.detail).toMatch(/^\[reverse\] line 10: read a 0 8 /);
    expect(r.detail).toContain(`got sha256:${P1}`);
  });

  it('fails fast when a request can never complete (a command the host lost)', async () => {
    const v = parseVector('about t\nderived hand\ndisk d 16\ntable a 0 16 linear d 0\ncreate a\nread a 0 8', 't.vec');
    const host = new CoreHost(context.module, v, ORDERS.fifo());
    host.execute = () => {}; // never completes any command
    const started = Date.now();
    await expect(driveVector(v, host)).rejects.toThrow('never completed');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
