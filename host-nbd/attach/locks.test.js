// The ownership lock: one owner per device, across processes, released however the owner ends.
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative } from './native.js';
import { tryLockDevice, unlockDevice } from './locks.js';

const native = loadNative();
let dir;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dmkit-run-'));
  vi.stubEnv('DMKIT_RUN_DIR', join(dir, 'run'));
});
afterAll(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

/** A child process that takes the lock of device `index` and holds it until killed. */
async function holder(index) {
  const addon = join(import.meta.dirname, '..', 'addon', 'build', 'Release', 'dmkit_nbd.node');
  const child = spawn(process.execPath, ['-e',
    `require(${JSON.stringify(addon)}).lockFile(${JSON.stringify(join(dir, 'run', `nbd${index}.lock`))}); ` +
    'console.log("locked"); setInterval(() => {}, 1000);'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  return child;
}

describe('device ownership locks', () => {
  it('admits one owner at a time within the process', () => {
    const fd = tryLockDevice(native, 3);
    expect(fd).not.toBeNull();
    expect(tryLockDevice(native, 3)).toBeNull();
    expect(tryLockDevice(native, 4)).not.toBeNull();
    unlockDevice(native, fd);
    const again = tryLockDevice(native, 3);
    expect(again).not.toBeNull();
    unlockDevice(native, again);
  });

  it('sees another process as the owner until it is killed with SIGKILL', async () => {
    const child = await holder(5);
    expect(tryLockDevice(native, 5)).toBeNull();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const fd = tryLockDevice(native, 5);
    expect(fd).not.toBeNull();
    unlockDevice(native, fd);
  });
});
