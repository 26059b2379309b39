// What block status reports: zero targets and the holes of image files as reading zeroes
// (through linear, striped and stacked devices), everything else as data. The holes come from
// the file system (the addon's lseek SEEK_DATA); without the addon, from what a sparse image was
// at open and what was written since (1 MiB granules).
import { describe, it, expect, afterEach } from 'vitest';
import { openSync, ftruncateSync, closeSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../devices/registry.js';
import { tempDir } from '../../test/temp-dir.js';

const MiB = 1 << 20;
const ZERO = 3;
let registry;
afterEach(async () => { await registry?.close(); });

function sparse(path, bytes) {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
  return path;
}

/** @param {{holes?: null}} [opts] holes: null runs without the addon's view of holes */
async function setup(opts = {}) {
  const dir = tempDir('dmkit-alloc-');
  registry = await DeviceRegistry.create(opts);
  return dir;
}

function trim(exp, offset, length) {
  return new Promise((resolve, reject) => exp.trim(offset, length, false, (e) => (e ? reject(e) : resolve(undefined))));
}

function write(exp, offset, length) {
  return new Promise((resolve, reject) => {
    const ptr = exp.allocBuffer(length);
    exp.engine.mem().fill(1, ptr, ptr + length);
    exp.write(offset, length, ptr, false, (e) => (e ? reject(e) : resolve(undefined)));
  });
}

describe('allocation map, holes from the file system', () => {
  it('a fresh sparse image is one zero hole; a write makes its file-system block data', async () => {
    const dir = await setup();
    await registry.create('d', `0 16384 linear ${sparse(join(dir, 'a'), 8 * MiB)} 0`);
    const exp = registry.getExport('d');
    expect(exp.blockStatus(0, 8 * MiB)).toEqual([{ length: 8 * MiB, flags: ZERO }]);
    await write(exp, 3 * MiB + 100, 10);
    const block = statSync(join(dir, 'a')).blksize;
    expect(exp.blockStatus(0, 8 * MiB)).toEqual([
      { length: 3 * MiB, flags: ZERO }, { length: block, flags: 0 }, { length: 5 * MiB - block, flags: ZERO },
    ]);
    expect(registry.allocation.knownZero('d', 0, 3 * MiB)).toBe(true);
    expect(registry.allocation.knownZero('d', 0, 3 * MiB + 1)).toBe(false);
  });

  it('an image that held data when opened: its holes are seen all the same', async () => {
    const dir = await setup();
    const p = join(dir, 'half');
    writeFileSync(p, Buffer.alloc(MiB, 1));
    ftruncateSync(openSync(p, 'r+'), 4 * MiB);
    await registry.create('d', `0 8192 linear ${p} 0`);
    expect(registry.getExport('d').blockStatus(0, 4 * MiB)).toEqual([{ length: MiB, flags: 0 }, { length: 3 * MiB, flags: ZERO }]);
  });

  it('a discard punches a hole: the blocks are freed and the range reads as zeroes', async () => {
    const dir = await setup();
    const p = join(dir, 'full');
    writeFileSync(p, Buffer.alloc(4 * MiB, 1));
    await registry.create('d', `0 8192 linear ${p} 0`);
    const exp = registry.getExport('d');
    const before = statSync(p).blocks;
    await trim(exp, MiB, 2 * MiB);
    expect(statSync(p).blocks).toBeLessThanOrEqual(before - (2 * MiB) / 512);
    expect(exp.blockStatus(0, 4 * MiB)).toEqual([{ length: MiB, flags: 0 }, { length: 2 * MiB, flags: ZERO }, { length: MiB, flags: 0 }]);
  });
});

describe('allocation map without the addon', () => {
  it('a fresh sparse image is one zero hole; writes make 1 MiB granules data', async () => {
    const dir = await setup({ holes: null });
    await registry.create('d', `0 16384 linear ${sparse(join(dir, 'a'), 8 * MiB)} 0`);
    const exp = registry.getExport('d');
    expect(exp.blockStatus(0, 8 * MiB)).toEqual([{ length: 8 * MiB, flags: ZERO }]);
    await write(exp, 3 * MiB + 100, 10);
    expect(exp.blockStatus(0, 8 * MiB)).toEqual([
      { length: 3 * MiB, flags: ZERO }, { length: MiB, flags: 0 }, { length: 4 * MiB, flags: ZERO },
    ]);
    expect(exp.blockStatus(100, 200)).toEqual([{ length: 200, flags: ZERO }]);
    expect(exp.blockStatus(0, 8 * MiB, 1)).toEqual([{ length: 3 * MiB, flags: ZERO }]);
    expect(registry.allocation.knownZero('d', 0, 3 * MiB)).toBe(true);
    expect(registry.allocation.knownZero('d', 0, 3 * MiB + 1)).toBe(false);
  });

  it('an image that held data when opened is data (nothing is known about it)', async () => {
    const dir = await setup({ holes: null });
    const p = join(dir, 'full');
    writeFileSync(p, Buffer.alloc(MiB));
    await registry.create('d', `0 2048 linear ${p} 0`);
    expect(registry.getExport('d').blockStatus(0, MiB)).toEqual([{ length: MiB, flags: 0 }]);
  });

  it('zero, error, striped and stacked segments', async () => {
    const dir = await setup({ holes: null });
    const a = sparse(join(dir, 'a'), 4 * MiB), b = sparse(join(dir, 'b'), 4 * MiB);
    await registry.create('s', `0 8192 striped 2 2048 ${a} 0 ${b} 0`); // 1 MiB chunks
    await registry.create('m', '0 2048 zero\n2048 2048 error\n4096 2048 linear s 2048');
    const s = registry.getExport('s');
    await write(s, 0, 4096); // chunk 0, on a
    expect(s.blockStatus(0, 4 * MiB)).toEqual([{ length: MiB, flags: 0 }, { length: 3 * MiB, flags: ZERO }]);
    await write(s, 2 * MiB, 4096); // chunk 2: a's second MiB
    expect(s.blockStatus(0, 4 * MiB)).toEqual([
      { length: MiB, flags: 0 }, { length: MiB, flags: ZERO }, { length: MiB, flags: 0 }, { length: MiB, flags: ZERO },
    ]);
    // m: zero, then error (data: not known to read as zeroes), then s's second MiB (chunk 1, on b: never written)
    expect(registry.getExport('m').blockStatus(0, 3 * MiB)).toEqual([
      { length: MiB, flags: ZERO }, { length: MiB, flags: 0 }, { length: MiB, flags: ZERO },
    ]);
  });
});
