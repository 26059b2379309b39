// The disk model of the power-loss test (power-loss.test.js): faulty-fs.py --volatile, a FUSE
// file system with a volatile write cache of 4 KiB pages. Checked with plain file system calls
// through the mount: what is written stays in the cache (reads see it, SOURCE does not) until
// the file is fsynced; O_DSYNC writes through; a power cut writes a seeded random half of the
// dirty pages to SOURCE and drops the rest, never touches what was synced, and leaves a disk
// that fails every operation with EIO until it is mounted again.
import { describe, it, expect, afterAll } from 'vitest';
import { closeSync, constants, fdatasyncSync, fsyncSync, openSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../nbd/helpers.js';
import { mountFaultyDisk, unmountAllFaultyDisks } from './lib/faulty-disk.js';

const PAGE = 4096;

afterAll(unmountAllFaultyDisks);

/** Bytes of one page, every byte `value`. */
const page = (value, n = 1) => Buffer.alloc(n * PAGE, value);

/** Reads a file through a new descriptor (a new open drops the kernel's cached pages). */
function readThrough(path) {
  const fd = openSync(path, 'r');
  try {
    const { size } = statSync(path);
    const b = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, b, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return b.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** Runs fn on a fresh volatile disk with `name` in it (holding `initial`), then unmounts. */
async function onVolatileDisk(name, initial, fn) {
  const dir = tempDir('dmkit-volatile-disk-');
  const disk = await mountFaultyDisk(dir, { volatile: true });
  writeFileSync(join(disk.source, name), initial);
  try {
    return await fn({ disk, source: join(disk.source, name), mounted: join(disk.mount, name) });
  } finally {
    await disk.unmount();
  }
}

/** Which of the file's pages hold `fresh` (the rest must hold `old`); throws on anything else. */
function pagesHolding(data, pages, fresh, old) {
  const out = [];
  for (let p = 0; p < pages; p++) {
    const part = data.subarray(p * PAGE, (p + 1) * PAGE);
    if (part.equals(page(fresh))) out.push(p);
    else if (!part.equals(page(old))) throw new Error(`page ${p} holds neither the old nor the new bytes`);
  }
  return out;
}

/** A power cut of 64 dirty pages (page 0 synced before) with `seed`: what survived. */
async function cutMultiPageWrite(seed) {
  return onVolatileDisk('f.img', page(1, 64), async ({ disk, source, mounted }) => {
    const fd = openSync(mounted, 'r+');
    writeSync(fd, page(2), 0, PAGE, 0);
    fdatasyncSync(fd); // page 0 is durable
    writeSync(fd, page(3, 64), 0, 64 * PAGE, 0); // all 64 pages dirty, page 0 too
    closeSync(fd);
    expect(readFileSync(source).equals(Buffer.concat([page(2), page(1, 63)]))).toBe(true);
    const cut = disk.powerCut(seed);
    const survived = readFileSync(source);
    const fresh = pagesHolding(survived, 64, 3, 1);
    return { cut, fresh, page0: survived.subarray(0, PAGE) };
  });
}

describe('faulty-fs.py --volatile: a disk with a write cache that loses power', () => {
  it('an unsynced write is read back through the mount but is not in SOURCE; after fdatasync it is', async () => {
    await onVolatileDisk('f.img', page(1, 4), async ({ source, mounted }) => {
      const fd = openSync(mounted, 'r+');
      writeSync(fd, Buffer.alloc(512, 7), 0, 512, PAGE + 1024); // part of page 1
      expect(readFileSync(source).equals(page(1, 4))).toBe(true);
      const expected = page(1, 4);
      expected.fill(7, PAGE + 1024, PAGE + 1536);
      expect(readThrough(mounted).equals(expected)).toBe(true); // from the cache, merged with SOURCE
      fdatasyncSync(fd);
      expect(readFileSync(source).equals(expected)).toBe(true);
      // fsync as well, and a write past the end: the size is durable at once, the data on fsync.
      writeSync(fd, page(9), 0, PAGE, 4 * PAGE);
      expect(statSync(source).size).toBe(5 * PAGE);
      expect(readFileSync(source).subarray(4 * PAGE).equals(page(0))).toBe(true);
      expect(readThrough(mounted).subarray(4 * PAGE).equals(page(9))).toBe(true);
      fsyncSync(fd);
      expect(readFileSync(source).subarray(4 * PAGE).equals(page(9))).toBe(true);
      closeSync(fd);
    });
  });

  it('a file opened O_DSYNC writes through at once', async () => {
    await onVolatileDisk('f.img', page(1, 2), async ({ source, mounted }) => {
      const fd = openSync(mounted, constants.O_RDWR | constants.O_DSYNC);
      writeSync(fd, page(5), 0, PAGE, PAGE);
      expect(readFileSync(source).equals(Buffer.concat([page(1), page(5)]))).toBe(true);
      closeSync(fd);
    });
  });

  it('a power cut keeps a seeded random part of the dirty pages, drops the rest, never touches synced data', async () => {
    const a = await cutMultiPageWrite(12345);
    expect(a.cut.kept + a.cut.dropped).toBe(64);
    expect(a.cut.kept).toBeGreaterThan(0);
    expect(a.cut.dropped).toBeGreaterThan(0);
    expect(a.cut.files).toEqual({ 'f.img': [a.cut.kept, a.cut.dropped] });
    expect(a.fresh.length).toBe(a.cut.kept); // whole pages, each new or old
    // Page 0 was synced before it was written again: it holds the synced or the new bytes, never the original.
    expect(a.page0.equals(page(2)) || a.page0.equals(page(3))).toBe(true);
    // The same seed keeps the same pages; another seed others.
    const b = await cutMultiPageWrite(12345);
    expect(b.fresh).toEqual(a.fresh);
    const c = await cutMultiPageWrite(777);
    expect(c.fresh).not.toEqual(a.fresh);
    console.log(`volatile disk: seed 12345 kept ${a.cut.kept} of 64 pages, seed 777 kept ${c.cut.kept}`);
  });

  it('after a power cut every operation fails with EIO; a new mount serves what survived', async () => {
    const dir = tempDir('dmkit-volatile-disk-');
    let disk = await mountFaultyDisk(dir, { volatile: true });
    writeFileSync(join(disk.source, 'f.img'), page(1, 8));
    const mounted = join(disk.mount, 'f.img');
    try {
      const fd = openSync(mounted, 'r+');
      writeSync(fd, page(4, 8), 0, 8 * PAGE, 0);
      const cut = disk.powerCut(1);
      expect(cut.kept + cut.dropped).toBe(8);
      expect(() => writeSync(fd, page(5), 0, PAGE, 0)).toThrow(expect.objectContaining({ code: 'EIO' }));
      expect(() => fdatasyncSync(fd)).toThrow(expect.objectContaining({ code: 'EIO' }));
      expect(() => openSync(mounted, 'r')).toThrow(expect.objectContaining({ code: 'EIO' }));
      expect(() => disk.powerCut(2)).toThrow(/EIO/);
      closeSync(fd);
      await disk.unmount();
      disk = await mountFaultyDisk(dir, { volatile: true });
      const survived = readThrough(mounted);
      expect(pagesHolding(survived, 8, 4, 1).length).toBe(cut.kept);
      expect(survived.equals(readFileSync(join(disk.source, 'f.img')))).toBe(true);
    } finally {
      await disk.unmount();
    }
  });
});
