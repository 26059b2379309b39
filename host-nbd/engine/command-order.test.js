// The engine starts the flushes of a batch of commands before the batch's synchronous reads and
// writes, so that their fdatasync runs in the thread pool meanwhile (the core lets a host run
// one batch in any order: a flush covers only writes completed before it was issued).
import { describe, it, expect, vi, afterEach } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../devices/registry.js';
import { OP } from '../../core-as/js/dmcore.js';
import { tempDir } from '../../test/temp-dir.js';

let registry;
afterEach(async () => {
  vi.restoreAllMocks();
  await registry?.close();
  registry = undefined;
});

describe('engine command order', () => {
  it('a flush taken in one batch with a write calls fdatasync before the write runs', async () => {
    const dir = tempDir('dmkit-command-order-');
    const img = join(dir, 'a');
    fs.writeFileSync(img, Buffer.alloc(1 << 20));
    registry = await DeviceRegistry.create();
    await registry.create('d', `0 2048 linear ${img} 0`);
    const exp = registry.getExport('d');
    const engine = registry.engine;
    const order = [];
    const realWrite = fs.writeSync;
    const realSync = fs.fdatasync;
    vi.spyOn(fs, 'writeSync').mockImplementation((...args) => { order.push('write'); return realWrite(...args); });
    vi.spyOn(fs, 'fdatasync').mockImplementation((fd, cb) => { order.push('fdatasync'); return realSync(fd, cb); });
    const ptr = exp.allocBuffer(4096);
    engine.mem().fill(9, ptr, ptr + 4096);
    const statuses = await Promise.all([
      new Promise((resolve) => expect(engine.submit(exp.id, OP.WRITE, 0, 0, 8, ptr, resolve)).toBe(0)),
      new Promise((resolve) => expect(engine.submit(exp.id, OP.FLUSH, 0, 0, 0, 0, resolve)).toBe(0)),
    ]);
    exp.free(ptr);
    expect(statuses).toEqual([0, 0]);
    expect(order).toEqual(['fdatasync', 'write']);
    expect(fs.readFileSync(img)[0]).toBe(9);
  });
});
