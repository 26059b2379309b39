// dmsetup wait through the registry: a waiter on a device's event number wakes when the device's
// live table raises an event (a snapshot that goes Invalid), and learns when the device is removed.
import { describe, it, expect, afterEach } from 'vitest';
import { writeFileSync } from 'node:fs';
import { getEventListeners } from 'node:events';
import { join } from 'node:path';
import { DeviceRegistry } from './registry.js';
import { tempDir } from '../../test/temp-dir.js';

let registry;
afterEach(async () => { await registry?.close(); });

function write(exp, offset, length) {
  return new Promise((resolve, reject) => {
    const ptr = exp.allocBuffer(length);
    exp.engine.mem().fill(1, ptr, ptr + length);
    exp.write(offset, length, ptr, false, (e) => (e ? reject(e) : resolve(undefined)));
  });
}

const settled = (p) => Promise.race([p.then(() => 'settled', () => 'settled'), new Promise((r) => setTimeout(() => r('pending'), 50))]);

describe('waiting for device events', () => {
  it('a waiter wakes when the snapshot goes Invalid, with the new number; others wait on', async () => {
    const dir = tempDir('dmkit-wait-');
    writeFileSync(join(dir, 'base'), Buffer.alloc(1 << 20));
    writeFileSync(join(dir, 'cow'), Buffer.alloc(64 * 512)); // header, one area, 6 chunks of 8 sectors
    registry = await DeviceRegistry.create();
    await registry.create('base', `0 2048 snapshot-origin ${join(dir, 'base')}`);
    await registry.create('snap', `0 2048 snapshot ${join(dir, 'base')} ${join(dir, 'cow')} P 8`);
    const snapWait = registry.waitEvent('snap', 0);
    const baseWait = registry.waitEvent('base', 0);
    const base = registry.getExport('base');
    await write(base, 0, 4096);
    expect(await settled(snapWait)).toBe('pending'); // one chunk copied: no event yet
    for (let i = 1; i < 8; i++) await write(base, i * 4096, 4096); // more chunks than the COW holds
    expect(registry.status('snap')).toMatch(/Invalid/);
    expect(await snapWait).toBe(1);
    expect(await registry.waitEvent('snap', 0)).toBe(1); // passed already: at once
    expect(await settled(registry.waitEvent('snap', 1))).toBe('pending');
    expect(await settled(baseWait)).toBe('pending');
    await registry.remove('snap');
    await registry.remove('base');
    await expect(baseWait).rejects.toThrow('base was removed while waiting for an event');
  });

  it('a waiter that was woken leaves nothing on its abort signal (a control client may wait many times)', async () => {
    registry = await DeviceRegistry.create();
    await registry.create('z', '0 8 zero');
    const gone = new AbortController();
    const waits = [1, 2, 3].map(() => registry.waitEvent('z', 0, gone.signal));
    expect(getEventListeners(gone.signal, 'abort')).toHaveLength(3);
    await registry.remove('z');
    for (const w of waits) await expect(w).rejects.toThrow('z was removed while waiting for an event');
    expect(getEventListeners(gone.signal, 'abort')).toHaveLength(0);
    expect(registry.eventWaiters).toHaveLength(0);
  });
});
