// The engine's promises to the layers above: async file I/O lands in core memory even when the
// memory grows meanwhile; growth is rare (memory reserved at start); FUA and FLUSH reach the
// backing files as fdatasync (a flush only those written since their last fdatasync).
import { describe, it, expect, vi, afterEach } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { tempDir, testBytes, readExport as read } from './helpers.js';

const MiB = 1 << 20;
let registry;
afterEach(async () => {
  vi.restoreAllMocks();
  await registry?.close();
  registry = undefined;
});

function write(exp, offset, bytes, fua) {
  return new Promise((resolve, reject) => {
    const ptr = exp.allocBuffer(bytes.length);
    exp.engine.mem().set(bytes, ptr);
    exp.write(offset, bytes.length, ptr, fua, (e) => (e ? reject(e) : resolve(undefined)));
  });
}

describe('engine', () => {
  it('a thread-pool read lands in core memory although the memory grew while it ran', async () => {
    const dir = tempDir();
    const data = testBytes(32 * MiB, 11);
    fs.writeFileSync(join(dir, 'a'), data);
    registry = await DeviceRegistry.create();
    await registry.create('d', `0 ${(32 * MiB) / 512} linear ${join(dir, 'a')} 0`);
    const exp = registry.getExport('d');
    const core = registry.engine.core;
    const before = core.memory.buffer;
    const pending = read(exp, 0, 32 * MiB); // 32 MiB: done in libuv's thread pool
    await Promise.resolve(); // the engine's pump runs: the pread is now with the thread pool
    expect(registry.engine.running).toBe(1);
    const hog = core.alloc(512 * MiB); // more than the reserve: the memory grows while it copies
    expect(core.memory.buffer).not.toBe(before);
    const got = await pending;
    core.free(hog);
    expect(Buffer.compare(got, data)).toBe(0);
  });

  it('buffers for requests come from memory reserved at start, without growing it', async () => {
    registry = await DeviceRegistry.create();
    const core = registry.engine.core;
    const before = core.memory.buffer;
    const ptrs = Array.from({ length: 64 }, () => core.alloc(2 * MiB));
    expect(core.memory.buffer).toBe(before);
    for (const p of ptrs) core.free(p);
  });

  it('FUA writes and FLUSH reach every backing file as fdatasync', async () => {
    const dir = tempDir();
    for (const n of ['a', 'b']) fs.writeFileSync(join(dir, n), Buffer.alloc(MiB));
    registry = await DeviceRegistry.create();
    await registry.create('s', `0 4096 striped 2 8 ${join(dir, 'a')} 0 ${join(dir, 'b')} 0`);
    const exp = registry.getExport('s');
    const fdOf = (n) => /** @type {any} */ (registry.engine.fileByPath(join(dir, n))).fd;
    const synced = [];
    const real = fs.fdatasync;
    vi.spyOn(fs, 'fdatasync').mockImplementation((fd, cb) => { synced.push(fd); return real(fd, cb); });
    await write(exp, 0, Buffer.alloc(4096, 1), false);
    expect(synced).toEqual([]);
    await write(exp, 0, Buffer.alloc(4096, 2), true); // one 4 KiB chunk: lands on a only
    expect(synced).toEqual([fdOf('a')]);
    synced.length = 0;
    await write(exp, 4096, Buffer.alloc(4096, 3), false); // lands on b only
    const flush = () => new Promise((resolve, reject) => exp.flush((e) => (e ? reject(e) : resolve(undefined))));
    await flush();
    // a: nothing written since the FUA write's fdatasync, which covered it; b: written since open.
    expect(synced).toEqual([fdOf('b')]);
    await write(exp, 0, Buffer.alloc(8192, 4), false); // lands on both
    synced.length = 0;
    await flush();
    expect(synced.sort()).toEqual([fdOf('a'), fdOf('b')].sort());
    expect(fs.readFileSync(join(dir, 'a'))[0]).toBe(4);
  });
});
