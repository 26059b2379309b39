// Suspend semantics in the server's registry, with slowed-down backing I/O so that requests
// are surely in flight: suspend resolves only after they completed; I/O submitted while
// suspended waits for resume; a reload swaps tables only at resume (and a resume a target
// refuses still leaves the new table live, suspended).
import { describe, it, expect } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { tempDir } from './helpers.js';

const MiB = 1 << 20;

async function setup() {
  const dir = tempDir();
  const a = join(dir, 'a.img'), b = join(dir, 'b.img');
  writeFileSync(a, Buffer.alloc(4 * MiB, 0xa1));
  writeFileSync(b, Buffer.alloc(4 * MiB, 0xb2));
  const registry = await DeviceRegistry.create();
  await registry.create('d', `0 8192 linear ${a} 0`);
  // Every backing write takes 100 ms.
  const file = registry.engine.fileByPath(a);
  const write = file.write.bind(file);
  file.write = (buf, at, len, pos, done) => write(buf, at, len, pos, (e) => setTimeout(() => done(e), 100));
  return { registry, exp: registry.getExport('d'), a, b };
}

function write(exp, offset, byte) {
  return new Promise((resolve, reject) => {
    const ptr = exp.allocBuffer(4096);
    exp.engine.mem().fill(byte, ptr, ptr + 4096);
    exp.write(offset, 4096, ptr, false, (e) => (e ? reject(e) : resolve(undefined)));
  });
}

function readByte(exp, offset) {
  return new Promise((resolve, reject) => exp.read(offset, 1, (e, ptr, skip) => {
    if (e) { reject(e); return; }
    const v = exp.engine.mem()[ptr + skip];
    exp.free(ptr);
    resolve(v);
  }));
}

describe('suspend and resume', () => {
  it('suspend waits for the requests in flight; new ones wait for resume', async () => {
    const { registry, exp } = await setup();
    const finished = [];
    const writes = Array.from({ length: 8 }, (_, i) => write(exp, i * 4096, i + 1).then(() => finished.push(i)));
    await new Promise((r) => setImmediate(r)); // the writes are now with the core and the files
    await registry.suspend('d');
    expect(finished.sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    let readDone = false;
    const read = readByte(exp, 4096).then((v) => { readDone = true; return v; });
    await new Promise((r) => setTimeout(r, 200));
    expect(readDone).toBe(false);
    await registry.resume('d');
    expect(await read).toBe(2);
    await Promise.all(writes);
    await registry.close();
  });

  it('a table swapped while its I/O runs: the old file stays open until that I/O is done', async () => {
    const { registry, exp, a, b } = await setup();
    const file = registry.engine.fileByPath(a);
    const pending = write(exp, 0, 0x77); // takes 100 ms on a
    await new Promise((r) => setImmediate(r));
    await registry.reload('d', `0 8192 linear ${b} 0`);
    await registry.resume('d'); // no suspend first: the old table's write is still running
    expect(registry.engine.fileByPath(a)).toBeUndefined(); // no table uses a any more
    expect(file.closed).toBe(false);
    await pending;
    expect(file.closed).toBe(true);
    expect(readFileSync(a)[0]).toBe(0x77);
    expect(await readByte(exp, 0)).toBe(0xb2);
    await registry.close();
  });

  it('a reload takes effect at resume, not before', async () => {
    const { registry, exp, b } = await setup();
    await registry.reload('d', `0 8192 linear ${b} 0`);
    expect(await readByte(exp, 0)).toBe(0xa1);
    expect(registry.info('d').hasInactive).toBe(true);
    await registry.suspend('d');
    await registry.resume('d');
    expect(await readByte(exp, 0)).toBe(0xb2);
    expect(registry.info('d').hasInactive).toBe(false);
    await registry.close();
  });
});

describe('a resume refused after the swap (snapshot handover, source not suspended)', () => {
  it('leaves the device suspended on its new table, with the export sized by it, as Linux does', async () => {
    const dir = tempDir();
    const base = join(dir, 'base.img'), cow = join(dir, 'cow.img');
    writeFileSync(base, Buffer.alloc(MiB, 0x5a));
    writeFileSync(cow, Buffer.alloc(MiB));
    const registry = await DeviceRegistry.create();
    try {
      await registry.create('a', `0 64 snapshot ${base} ${cow} P 8`);
      await registry.create('s', '0 16 zero');
      expect(registry.getExport('s')?.size()).toBe(16 * 512);
      await registry.reload('s', `0 64 snapshot ${base} ${cow} P 8`);
      await expect(registry.resume('s')).rejects.toThrow('Unable to perform snapshot handover until source is suspended.');
      expect(registry.table('s').trim()).toBe(`0 64 snapshot ${base} ${cow} P 0`);
      expect(registry.info('s')).toMatchObject({ state: 'SUSPENDED', hasInactive: false });
      expect(registry.getExport('s')?.size()).toBe(64 * 512);
      await registry.suspend('a');
      await registry.resume('s'); // the handover
      expect(registry.table('s').trim()).toBe(`0 64 snapshot ${base} ${cow} P 8`);
      expect(registry.status('s').trim()).toBe('0 64 snapshot 16/2048 16');
      expect(await readByte(registry.getExport('s'), 4096)).toBe(0x5a);
    } finally {
      await registry.close();
    }
  });
});
