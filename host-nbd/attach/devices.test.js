// What sysfs says about NBD devices, read from a fake /sys/block (DMKIT_SYS_BLOCK).
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';

let dir;
/** @type {typeof import('./devices.js')} */
let devices;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dmkit-sysblock-'));
  const dev = (name, files) => {
    mkdirSync(join(dir, name));
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, name, f)), { recursive: true });
      writeFileSync(join(dir, name, f), `${text}\n`);
    }
  };
  dev('nbd0', { size: '131072', pid: '4242', backend: 'dmkit:disk', 'queue/logical_block_size': '4096' }); // netlink, dmkit
  dev('nbd1', { size: '0' });                                          // free
  dev('nbd10', { size: '0' });                                         // free, sorts after 2
  dev('nbd2', { size: '2048', pid: '77' });                            // ioctl (no backend)
  dev('loop0', { size: '0' });                                         // not NBD
  vi.stubEnv('DMKIT_SYS_BLOCK', dir);
  vi.resetModules();
  devices = await import('./devices.js');
});

afterAll(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

describe('NBD devices in sysfs', () => {
  it('parses device names and refuses other devices', () => {
    expect(devices.parseDevice('/dev/nbd12')).toBe(12);
    expect(devices.parseDevice('nbd3')).toBe(3);
    expect(() => devices.parseDevice('/dev/sda')).toThrow(/not an NBD device/);
    expect(() => devices.parseDevice('/dev/nbd1p1')).toThrow(/not an NBD device/);
  });

  it('reads whether a device is bound, who holds it, its size and block size', () => {
    expect(devices.deviceState(0)).toEqual({
      index: 0, path: '/dev/nbd0', exists: true, bound: true, pid: 4242, backend: 'dmkit:disk', sizeBytes: 131072 * 512, blockSize: 4096,
    });
    expect(devices.deviceState(1)).toMatchObject({ exists: true, bound: false, pid: null, backend: null, sizeBytes: 0, blockSize: null });
    expect(devices.deviceState(2)).toMatchObject({ bound: true, pid: 77, backend: null });
    expect(devices.deviceState(9)).toMatchObject({ exists: false, bound: false });
  });

  it('lists devices in numeric order and finds the unbound ones', () => {
    expect(devices.listDevices()).toEqual([0, 1, 2, 10]);
    expect(devices.unboundDevices()).toEqual([1, 10]);
  });

  it('names the holder of a busy device', () => {
    expect(devices.describeHolder(devices.deviceState(0))).toBe("'dmkit:disk' (pid 4242)");
    expect(devices.describeHolder(devices.deviceState(2))).toBe('a client (pid 77)');
    expect(devices.backendFor('disk')).toBe('dmkit:disk');
  });
});
