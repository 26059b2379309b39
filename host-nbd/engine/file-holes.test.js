// Holes in image files: where they are (the addon's SEEK_DATA / SEEK_HOLE), zeroing by punching
// one, what a flush then owes, and the way back to writing zeroes where a file system cannot punch.
import { describe, it, expect, vi, afterEach } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { FileBacking } from './file-backing.js';
import { loadFileHoles } from './file-holes.js';
import { tempDir } from '../../test/temp-dir.js';

const KiB = 1024, MiB = 1 << 20;
/** @type {FileBacking[]} */
let open = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const f of open) f.close();
  open = [];
});

/** A 4 MiB image with data in its second MiB only. */
function image(opts = {}) {
  const path = join(tempDir('dmkit-holes-'), 'img');
  fs.writeFileSync(path, '');
  fs.truncateSync(path, 4 * MiB);
  const fd = fs.openSync(path, 'r+');
  fs.writeSync(fd, Buffer.alloc(MiB, 7), 0, MiB, MiB);
  fs.closeSync(fd);
  const f = FileBacking.open(path, opts);
  open.push(f);
  return f;
}

const zero = (f, at, n) => new Promise((resolve, reject) => f.zero(at, n, (e) => (e ? reject(e) : resolve(undefined))));
const flush = (f) => new Promise((resolve, reject) => f.flush((e) => (e ? reject(e) : resolve(undefined))));

describe('holes in image files', () => {
  it('the addon is built here (every other test in this file relies on it)', () => {
    expect(loadFileHoles()).toMatchObject({ why: null });
  });

  it('runs: holes and data as the file system has them; past the end of the file counts as data', () => {
    const f = image();
    expect(f.zeroRuns(0, 4 * MiB)).toEqual([{ length: MiB, hole: true }, { length: MiB, hole: false }, { length: 2 * MiB, hole: true }]);
    expect(f.zeroRuns(MiB + 512, 1024)).toEqual([{ length: 1024, hole: false }]);
    expect(f.zeroRuns(3 * MiB, 2 * MiB)).toEqual([{ length: MiB, hole: true }, { length: MiB, hole: false }]);
    expect(f.zeroRuns(2 * MiB, MiB)).toEqual([{ length: MiB, hole: true }]);
    expect(f.zeroRuns(2 * MiB - 1, MiB)).toEqual([{ length: 1, hole: false }, { length: MiB - 1, hole: true }]);
  });

  it('an image with every block allocated at open is all data without asking; a hole we punch is seen', async () => {
    const path = join(tempDir('dmkit-holes-'), 'full');
    fs.writeFileSync(path, Buffer.alloc(MiB, 3));
    const real = /** @type {import('./file-holes.js').FileHoles} */ (loadFileHoles().holes);
    let asked = 0;
    const f = FileBacking.open(path, { holes: { runs: (...a) => { asked++; return real.runs(...a); }, punch: real.punch } });
    open.push(f);
    expect(f.zeroRuns(0, MiB)).toEqual([{ length: MiB, hole: false }]);
    expect(asked).toBe(0);
    await zero(f, 256 * KiB, 256 * KiB);
    expect(f.zeroRuns(0, MiB)).toEqual([{ length: 256 * KiB, hole: false }, { length: 256 * KiB, hole: true }, { length: 512 * KiB, hole: false }]);
    expect(asked).toBe(1);
  });

  it('zeroing punches a hole, and the next flush syncs it', async () => {
    const f = image();
    await flush(f);
    const syncs = vi.spyOn(fs, 'fdatasync');
    await zero(f, MiB + 64 * KiB, 128 * KiB);
    const b = Buffer.alloc(128 * KiB, 1);
    fs.readSync(f.fd, b, 0, b.length, MiB + 64 * KiB);
    expect(b.equals(Buffer.alloc(128 * KiB))).toBe(true);
    expect(f.zeroRuns(MiB, MiB)).toEqual([{ length: 64 * KiB, hole: false }, { length: 128 * KiB, hole: true }, { length: MiB - 192 * KiB, hole: false }]);
    await flush(f);
    expect(syncs).toHaveBeenCalledTimes(1);
  });

  it('where the file system cannot punch, zeroing writes zeroes where the file is not zero (and says so once)', async () => {
    let punches = 0;
    const real = /** @type {import('./file-holes.js').FileHoles} */ (loadFileHoles().holes);
    const f = image({
      holes: {
        runs: real.runs,
        punch: (_fd, _at, _n, done) => { punches++; done(Object.assign(new Error('not supported (test)'), { code: 'EOPNOTSUPP' })); },
      },
    });
    await zero(f, MiB, 64 * KiB);
    await zero(f, 2 * MiB - 64 * KiB, 64 * KiB);
    expect(punches).toBe(1); // the second zeroing went straight to writing zeroes
    const b = Buffer.alloc(MiB, 1);
    fs.readSync(f.fd, b, 0, b.length, MiB);
    expect(b.subarray(0, 64 * KiB).equals(Buffer.alloc(64 * KiB))).toBe(true);
    expect(b.subarray(MiB - 64 * KiB).equals(Buffer.alloc(64 * KiB))).toBe(true);
    expect(b.subarray(64 * KiB, MiB - 64 * KiB).equals(Buffer.alloc(MiB - 128 * KiB, 7))).toBe(true);
  });

  it('any other punch error reaches the caller', async () => {
    const f = image({ holes: { runs: () => [], punch: (_fd, _at, _n, done) => done(Object.assign(new Error('EIO (test)'), { code: 'EIO' })) } });
    await expect(zero(f, 0, 4096)).rejects.toMatchObject({ code: 'EIO' });
  });
});
