// Small commands of one batch that are adjacent in a file run as one preadv or pwritev
// (adjacent-groups.js, Engine.executeRun): a sequential write to a snapshot's origin copies each 4 KiB chunk out
// with a read from the origin and a write into the next COW chunk, 64 of each per 256 KiB.
import { describe, it, expect, vi, afterEach } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../devices/registry.js';
import { tempDir } from '../../test/temp-dir.js';
import { testBytes } from '../../test/nbd/helpers.js';

const KiB = 1024, MiB = 1 << 20;

let registry;
afterEach(async () => {
  vi.restoreAllMocks();
  await registry?.close();
  registry = undefined;
});

/** Counts the file calls: one-by-one reads and writes, and vectored ones (on the event loop or in the pool) with their buffer counts. */
function countFileCalls() {
  const calls = { readSync: 0, writeSync: 0, readv: /** @type {string[]} */ ([]), writev: /** @type {string[]} */ ([]) };
  const real = { readSync: fs.readSync, writeSync: fs.writeSync, readvSync: fs.readvSync, writevSync: fs.writevSync, readv: fs.readv, writev: fs.writev };
  vi.spyOn(fs, 'readSync').mockImplementation((...a) => { calls.readSync++; return real.readSync(...a); });
  vi.spyOn(fs, 'writeSync').mockImplementation((...a) => { calls.writeSync++; return real.writeSync(...a); });
  for (const name of /** @type {const} */ (['readvSync', 'writevSync', 'readv', 'writev'])) {
    const list = name.startsWith('read') ? calls.readv : calls.writev;
    vi.spyOn(fs, name).mockImplementation((fd, bufs, ...a) => { list.push(`${name.endsWith('Sync') ? 'now' : 'pool'} ${bufs.length}`); return real[name](fd, bufs, ...a); });
  }
  return calls;
}

function readAt(exp, offset, length) {
  return new Promise((resolve, reject) => exp.read(offset, length, (e, ptr, skip) => {
    if (e) { reject(e); return; }
    const bytes = Buffer.from(registry.engine.mem().subarray(ptr + skip, ptr + skip + length));
    exp.free(ptr);
    resolve(bytes);
  }));
}

function writeAt(exp, offset, bytes) {
  const ptr = exp.allocBuffer(bytes.length);
  registry.engine.mem().set(bytes, ptr);
  return new Promise((resolve, reject) => exp.write(offset, bytes.length, ptr, false, (e) => (e ? reject(e) : resolve(undefined))));
}

/** An origin image of `bytes` random bytes, served as `base`, with a snapshot `snap` of it. */
async function originWithSnapshot(bytes, store) {
  const dir = tempDir('dmkit-bulk-runs-');
  const img = join(dir, 'origin'), cow = join(dir, 'cow');
  const old = testBytes(bytes, 3);
  fs.writeFileSync(img, old);
  fs.writeFileSync(cow, '');
  fs.truncateSync(cow, bytes);
  registry = await DeviceRegistry.create();
  await registry.create('base', `0 ${bytes / 512} snapshot-origin ${img}`);
  await registry.create('snap', `0 ${bytes / 512} snapshot ${img} ${cow} ${store} 8`);
  return { old, base: registry.getExport('base'), snap: registry.getExport('snap') };
}

describe('adjacent small commands of a batch', () => {
  it('a 256 KiB write to an origin copies its 64 chunks out and writes them with three vectored calls, not 192 small ones', async () => {
    const { old, base, snap } = await originWithSnapshot(4 * MiB, 'N');
    const fresh = testBytes(256 * KiB, 4);
    const calls = countFileCalls();
    await writeAt(base, MiB, fresh);
    vi.restoreAllMocks();
    // The 64 chunk reads from the origin went as one preadv on the event loop, and so did the 64
    // writes into the COW file and the 64 to the origin.
    expect(calls.readv).toEqual(['now 64']);
    expect(calls.writev).toEqual(['now 64', 'now 64']);
    expect(calls.readSync).toBe(0);
    expect(calls.writeSync).toBe(0);
    // And it is the same copy-on-write: the snapshot keeps the old bytes, the origin has the new.
    expect((await readAt(snap, MiB - 4 * KiB, 264 * KiB)).equals(old.subarray(MiB - 4 * KiB, MiB + 260 * KiB))).toBe(true);
    expect((await readAt(base, MiB, 256 * KiB)).equals(fresh)).toBe(true);
    expect(registry.engine.core.status(snap.id)).toContain(`${64 * 8}/${4 * MiB / 512}`);
  });

  it('a run stops at 256 commands: a 2 MiB write to a persistent snapshot\'s origin reads its 512 chunks in two', async () => {
    const { old, base, snap } = await originWithSnapshot(4 * MiB, 'P');
    const fresh = testBytes(2 * MiB, 7);
    const calls = countFileCalls();
    await writeAt(base, MiB, fresh);
    vi.restoreAllMocks();
    expect(calls.readv).toEqual(['now 256', 'now 256']);
    expect(calls.readSync).toBe(0);
    expect((await readAt(snap, MiB, 2 * MiB)).equals(old.subarray(MiB, 3 * MiB))).toBe(true);
    expect((await readAt(base, MiB, 2 * MiB)).equals(fresh)).toBe(true);
  });

  it('a single small command still runs on the event loop', async () => {
    const dir = tempDir('dmkit-bulk-runs-');
    const img = join(dir, 'd');
    fs.writeFileSync(img, Buffer.alloc(MiB));
    registry = await DeviceRegistry.create();
    await registry.create('d', `0 ${MiB / 512} linear ${img} 0`);
    const exp = registry.getExport('d');
    const calls = countFileCalls();
    await writeAt(exp, 8192, testBytes(4096, 5));
    vi.restoreAllMocks();
    expect(calls.writeSync).toBe(1);
    expect(calls.writev.length).toBe(0);
  });
});
