// Large transfers of one event-loop turn leave merged: adjacent reads (writes) of a file as one
// preadv (pwritev), each request still completed on its own, with its own bytes, also when the
// core's memory grows before or while the merged transfer runs, when the file ends inside the
// run, or when the kernel moves only part of it. Writes merged this way still reach the disk on
// FLUSH.
import { describe, it, expect, vi, afterEach } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../devices/registry.js';
import { FileBacking } from './file-backing.js';
import { MERGE_MAX_BYTES } from './transfer-plug.js';
import { readExport as read } from '../../test/nbd/helpers.js';
import { tempDir } from '../../test/temp-dir.js';

const KiB = 1024, MiB = 1 << 20;
const PIECE = 256 * KiB; // nbdcopy's request size: above the synchronous limit

/** @type {DeviceRegistry | undefined} */
let registry;
/** @type {FileBacking[]} */
let files = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await registry?.close();
  registry = undefined;
  for (const f of files) f.close();
  files = [];
});

function tempFile(bytes) {
  const dir = tempDir('dmkit-plug-');
  const path = join(dir, 'img');
  fs.writeFileSync(path, bytes);
  return path;
}

function pattern(length, seed) {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

async function linear(bytes) {
  const path = tempFile(bytes);
  registry = await DeviceRegistry.create();
  await registry.create('d', `0 ${bytes.length / 512} linear ${path} 0`);
  return { exp: registry.getExport('d'), engine: registry.engine, path };
}

function write(exp, offset, bytes) {
  return new Promise((resolve, reject) => {
    const ptr = exp.allocBuffer(bytes.length);
    exp.engine.mem().set(bytes, ptr);
    exp.write(offset, bytes.length, ptr, false, (e) => (e ? reject(e) : resolve(undefined)));
  });
}

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('merged transfers through the engine', () => {
  it('adjacent large reads of one turn leave as one preadv and each gets its own bytes', async () => {
    const data = pattern(4 * MiB, 1);
    const { exp } = await linear(data);
    const readv = vi.spyOn(fs, 'readv');
    const read1 = vi.spyOn(fs, 'read');
    const offsets = [0, PIECE, 2 * PIECE, 3 * PIECE, 3 * MiB]; // the last is not adjacent
    const got = await Promise.all(offsets.map((o) => read(exp, o, PIECE)));
    offsets.forEach((o, i) => expect(Buffer.compare(got[i], data.subarray(o, o + PIECE))).toBe(0));
    expect(readv).toHaveBeenCalledTimes(1);
    expect(readv.mock.calls[0][1]).toHaveLength(4);
    expect(read1).toHaveBeenCalledTimes(1); // the one at 3 MiB, alone
  });

  it('a merged job moves at most MERGE_MAX_BYTES', async () => {
    const data = pattern(4 * MiB, 2);
    const { exp } = await linear(data);
    const readv = vi.spyOn(fs, 'readv');
    const n = (2 * MERGE_MAX_BYTES) / PIECE;
    const got = await Promise.all(Array.from({ length: n }, (_, i) => read(exp, i * PIECE, PIECE)));
    expect(Buffer.compare(Buffer.concat(got), data.subarray(0, 2 * MERGE_MAX_BYTES))).toBe(0);
    expect(readv).toHaveBeenCalledTimes(2);
  });

  it('held reads land in core memory although the memory grew before they left', async () => {
    const data = pattern(2 * MiB, 3);
    const { exp, engine } = await linear(data);
    const before = engine.core.memory.buffer;
    const pending = Promise.all([read(exp, 0, PIECE), read(exp, PIECE, PIECE)]);
    await Promise.resolve(); // the pump ran: both are held in the plug
    expect(engine.running).toBe(2);
    const hog = engine.core.alloc(512 * MiB); // past the reserve: the memory grows
    expect(engine.core.memory.buffer).not.toBe(before);
    const got = await pending;
    engine.core.free(hog);
    expect(Buffer.compare(Buffer.concat(got), data.subarray(0, 2 * PIECE))).toBe(0);
  });

  it('a merged read lands in core memory although the memory grew while it ran', async () => {
    const data = pattern(2 * MiB, 4);
    const { exp, engine } = await linear(data);
    const readv = vi.spyOn(fs, 'readv');
    const pending = Promise.all([read(exp, 0, PIECE), read(exp, PIECE, PIECE)]);
    await Promise.resolve();
    await nextTurn(); // released: the preadv is with the thread pool
    expect(readv).toHaveBeenCalledTimes(1);
    const hog = engine.core.alloc(512 * MiB);
    const got = await pending;
    engine.core.free(hog);
    expect(Buffer.compare(Buffer.concat(got), data.subarray(0, 2 * PIECE))).toBe(0);
  });

  it('adjacent large writes of one turn leave as one pwritev, and a FLUSH after them syncs', async () => {
    const { exp, path } = await linear(Buffer.alloc(2 * MiB));
    const writev = vi.spyOn(fs, 'writev');
    const data = pattern(3 * PIECE, 5);
    await Promise.all([0, 1, 2].map((i) => write(exp, i * PIECE, data.subarray(i * PIECE, (i + 1) * PIECE))));
    expect(writev).toHaveBeenCalledTimes(1);
    expect(Buffer.compare(fs.readFileSync(path).subarray(0, 3 * PIECE), data)).toBe(0);
    const synced = vi.spyOn(fs, 'fdatasync');
    await new Promise((resolve, reject) => exp.flush((e) => (e ? reject(e) : resolve(undefined))));
    expect(synced).toHaveBeenCalled();
  });
});

describe('FileBacking runs', () => {
  function backing(bytes) {
    const f = FileBacking.open(tempFile(bytes));
    files.push(f);
    return f;
  }

  /** Runs parts (from `mem`, at position `at`, of `length` bytes each) as one run; resolves with their errors. */
  function runParts(f, write, mem, position, lengths) {
    let at = 0, pos = position;
    const parts = [];
    const results = lengths.map((length) => {
      const p = new Promise((resolve) => parts.push({ at, length, position: pos, done: resolve }));
      at += length;
      pos += length;
      return p;
    });
    if (write) f.writeRun(mem, parts);
    else f.readRun(mem, parts);
    return Promise.all(results);
  }

  it('a read run past the end of the file (shortened while open): the parts inside read, the part it ends in fails with EIO', async () => {
    const data = pattern(96 * KiB, 6);
    const f = backing(data); // the run asks for 128 KiB: the file ends in its second part
    const mem = Buffer.alloc(128 * KiB, 0xff);
    const errors = await runParts(f, false, mem, 0, [64 * KiB, 64 * KiB]);
    expect(errors[0]).toBe(null);
    expect(errors[1]).toMatchObject({ code: 'EIO', message: expect.stringMatching(/runs past the end of the file/) });
    expect(Buffer.compare(mem.subarray(0, 64 * KiB), data.subarray(0, 64 * KiB))).toBe(0);
  });

  it('a write run the kernel takes only part of is finished part by part', async () => {
    const f = backing(Buffer.alloc(256 * KiB));
    const real = fs.writev;
    vi.spyOn(fs, 'writev').mockImplementation((fd, bufs, pos, cb) => real(fd, [bufs[0], bufs[1].subarray(0, 100)], pos, cb));
    const mem = pattern(192 * KiB, 7);
    expect(await runParts(f, true, mem, 4096, [64 * KiB, 64 * KiB, 64 * KiB])).toEqual([null, null, null]);
    const file = fs.readFileSync(f.path);
    expect(Buffer.compare(file.subarray(4096, 4096 + 192 * KiB), mem)).toBe(0);
  });

  it('a failed run fails every part', async () => {
    const f = backing(Buffer.alloc(256 * KiB));
    vi.spyOn(fs, 'readv').mockImplementation((fd, bufs, pos, cb) => cb(Object.assign(new Error('EIO (test)'), { code: 'EIO' }), 0, bufs));
    const errors = await runParts(f, false, Buffer.alloc(128 * KiB), 0, [64 * KiB, 64 * KiB]);
    expect(errors.map((e) => e && e.code)).toEqual(['EIO', 'EIO']);
  });
});
