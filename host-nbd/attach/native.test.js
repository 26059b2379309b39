// The addon as JavaScript sees it: strict arguments, Node-style errors, and a clear refusal
// where it cannot exist (not Linux) or cannot be built (the rest of dmkit still installs).
import { describe, it, expect, vi, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadNative } from './native.js';
import { chooseMethod } from './kernel.js';

const ROOT = join(import.meta.dirname, '..', '..');

afterEach(() => { vi.unstubAllEnvs(); });

describe('native addon', () => {
  it('checks its arguments and reports system errors with code, errno and syscall', async () => {
    const native = loadNative();
    expect(() => native.netlinkConnect({ sizeBytes: -1 })).toThrow(TypeError);
    expect(() => native.netlinkConnect({ sizeBytes: 1, blockSize: 512, serverFlags: 1, timeout: 0, deadConnTimeout: 0, fds: [] }))
      .toThrow(/fds must not be empty/);
    expect(() => native.ioctlAttach({ path: '/dev/nbd0' }, null)).toThrow(/onReady must be a function/);
    for (const bad of [-1, 1.5, 2 ** 32, 'nbd0']) expect(() => native.netlinkDisconnect(bad)).toThrow(/index must be a device number/);
    const err = await native.flushDevice('/nonexistent/dmkit-device', true).catch((e) => e);
    expect(err).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open /nonexistent/dmkit-device' });
    expect(typeof native.netlinkProbe()).toBe('boolean');
  });

  it('makes connected, close-on-exec socket pairs', () => {
    const native = loadNative();
    const [a, b] = native.socketPair();
    const r = spawnSync('ls', [`/proc/self/fd/${a}`, `/proc/self/fd/${b}`]);
    expect(r.status).not.toBe(0); // not inherited by children
    native.closeFd(a);
    native.closeFd(b);
  });

  it('says attaching needs Linux elsewhere', async () => {
    const platform = Object.getOwnPropertyDescriptor(process, 'platform');
    Object.defineProperty(process, 'platform', { value: 'darwin' });
    try {
      vi.resetModules();
      const fresh = await import('./native.js');
      expect(() => fresh.loadNative()).toThrow(/needs Linux's nbd driver; this is darwin/);
    } finally {
      Object.defineProperty(process, 'platform', /** @type {PropertyDescriptor} */ (platform));
    }
  });

  it('refuses an unknown method and a forced netlink the kernel lacks', () => {
    const fake = /** @type {any} */ ({ netlinkProbe: () => false });
    expect(() => chooseMethod(fake, 'carrier-pigeon')).toThrow(/unknown attach method 'carrier-pigeon'/);
    expect(() => chooseMethod(fake, 'netlink')).toThrow(/modprobe nbd|no NBD netlink interface/);
    expect(chooseMethod(/** @type {any} */ ({ netlinkProbe: () => true }))).toBe('netlink');
    vi.stubEnv('DMKIT_NBD_METHOD', 'semaphore'); // the environment forces a method too
    expect(() => chooseMethod(fake)).toThrow(/unknown attach method 'semaphore'/);
  });

  it('lets npm install go on when the addon cannot be built, and says why', () => {
    const notLinux = "data:text/javascript,Object.defineProperty(process,'platform',{value:'freebsd'})";
    const optional = spawnSync(process.execPath, ['--import', notLinux, 'host-nbd/addon/build.js', '--optional'], { cwd: ROOT, encoding: 'utf8' });
    expect(optional.status).toBe(0);
    expect(optional.stderr).toMatch(/addon was not built: the NBD attach addon is Linux-only \(this is freebsd\)/);
    expect(optional.stderr).toMatch(/everything but `dmkit attach` works without it/);
    const required = spawnSync(process.execPath, ['--import', notLinux, 'host-nbd/addon/build.js'], { cwd: ROOT, encoding: 'utf8' });
    expect(required.status).toBe(1);
  });
});
