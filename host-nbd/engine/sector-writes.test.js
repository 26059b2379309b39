// A write that does not cover whole sectors is read-modify-written under an exclusive lock on its
// sectors (sector-writes.js). A write refused before it starts must not keep that lock.
import { describe, it, expect, vi, afterEach } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../devices/registry.js';
import { NbdError } from '../protocol/errors.js';
import { NBD_ERR } from '../protocol/constants.js';
import { tempDir } from '../../test/temp-dir.js';

let registry;
afterEach(async () => {
  vi.restoreAllMocks();
  await registry?.close();
  registry = undefined;
});

/** exp.write of `bytes` at `offset`, settled within 5 s (a write stuck behind a lock is an error). */
function write(exp, offset, bytes) {
  const ptr = exp.allocBuffer(bytes.length);
  registry.engine.mem().set(bytes, ptr);
  return Promise.race([
    new Promise((resolve) => exp.write(offset, bytes.length, ptr, false, resolve)),
    new Promise((_, reject) => setTimeout(() => reject(new Error('the write never ended')), 5000)),
  ]);
}

describe('unaligned writes', () => {
  it('one refused for want of memory fails with ENOMEM and leaves its sectors writable', async () => {
    const img = join(tempDir('dmkit-sector-writes-'), 'd');
    fs.writeFileSync(img, Buffer.alloc(64 * 1024));
    registry = await DeviceRegistry.create();
    await registry.create('d', `0 128 linear ${img} 0`);
    const exp = registry.getExport('d');
    const real = exp.allocBuffer.bind(exp);
    let calls = 0; // the first is the payload's buffer, the second the read-modify-write's
    vi.spyOn(exp, 'allocBuffer').mockImplementation((n) => {
      if (++calls === 2) throw new NbdError(NBD_ERR.ENOMEM, `no memory for a ${n}-byte buffer`);
      return real(n);
    });
    const e = await write(exp, 1000, Buffer.alloc(100, 1));
    expect(e?.message).toMatch(/no memory/);
    expect(await write(exp, 1000, Buffer.alloc(100, 2))).toBeNull();
    expect(fs.readFileSync(img).subarray(1000, 1100)).toEqual(Buffer.alloc(100, 2));
  });
});
