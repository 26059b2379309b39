// An attached device follows its export's size when a resume changes it (resize.js, the
// manager's resize, the registry's hook): which devices get which size, the block-size check,
// the log lines, and a resume through the registry reaching the kernel call. The kernel is a fake
// addon here; test/vm/suites/attach*.sh resize real devices.
import { describe, it, expect, afterEach } from 'vitest';
import { EventEmitter } from 'node:events';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planResize, sizeProblem } from './resize.js';
import { AttachManager } from './manager.js';
import { Attachment } from './attachment.js';
import { createAttacher } from './serve-hooks.js';
import { DeviceRegistry } from '../devices/registry.js';
import { tempDir } from '../../test/temp-dir.js';

const MiB = 1 << 20;

/** A fake addon recording the resize calls; `refuse` makes them fail as the kernel would. */
function fakeNative({ refuse = false } = {}) {
  const calls = [];
  const fail = (what) => Object.assign(new Error(`${what}: Invalid argument`), { code: 'EINVAL', syscall: what });
  return {
    calls,
    /** @type {number | undefined} */ kernelSize: undefined,
    async netlinkResize(p) { calls.push(['netlink', p]); if (refuse) throw fail('NBD_CMD_RECONFIGURE (size)'); },
    async ioctlSetSize(path, bytes) { calls.push(['ioctl', { path, sizeBytes: bytes }]); if (refuse) throw fail(`NBD_SET_SIZE on ${path}`); },
  };
}

/** An attachment whose connections never close (the kernel would hold them). */
function attachment(native, { index, method = 'netlink', exportName = 'disk', sizeBytes = 64 * MiB, blockSize = 512 }) {
  const serverSide = Object.assign(new EventEmitter(), { closed: false });
  return new Attachment({
    native: /** @type {any} */ (native), index, method, exportName, sizeBytes, blockSize, backend: `dmkit:${exportName}`,
    connections: [/** @type {any} */ ({ serverSide })], running: null, lockFd: null, reconnected: false,
    idle: async () => {}, suspended: () => false, log: () => {}, kernelSize: () => native.kernelSize ?? null,
  });
}

function managerWith(native, specs) {
  const lines = [];
  const manager = new AttachManager({ serveFd: /** @type {any} */ (null), log: (l) => lines.push(l) });
  for (const s of specs) {
    const a = attachment(native, s);
    manager.attachments.set(a.index, a);
  }
  return { manager, lines };
}

describe('which attached devices take a new export size', () => {
  const dev = (o) => ({ path: `/dev/nbd${o.i}`, exportName: 'disk', sizeBytes: 64 * MiB, blockSize: 512, state: 'attached', ...o });

  it('only the attached devices of that export whose size differs', () => {
    const list = [dev({ i: 0 }), dev({ i: 1, exportName: 'other' }), dev({ i: 2, state: 'detaching' }),
      dev({ i: 3, state: 'ended' }), dev({ i: 4, sizeBytes: 128 * MiB }), dev({ i: 5, blockSize: 4096 })];
    const plan = planResize(list, 'disk', 128 * MiB);
    expect(plan.map((p) => [p.attachment.path, p.from, p.to, p.problem])).toEqual([
      ['/dev/nbd0', 64 * MiB, 128 * MiB, null],
      ['/dev/nbd5', 64 * MiB, 128 * MiB, null],
    ]);
    expect(planResize(list, 'nosuch', MiB)).toEqual([]);
  });

  it('a size that is not a multiple of the block size is a problem, shrinking is not', () => {
    expect(sizeProblem(128 * MiB, 4096)).toBeNull();
    expect(sizeProblem(MiB, 512)).toBeNull();
    expect(sizeProblem(0, 512)).toBeNull();
    expect(sizeProblem(64 * MiB + 512, 4096)).toBe(`${64 * MiB + 512} bytes is not a multiple of its 4096-byte block size`);
    expect(sizeProblem(1.5, 512)).toMatch(/not a size in bytes/);
    const plan = planResize([dev({ i: 0, blockSize: 4096 }), dev({ i: 1 })], 'disk', 32 * MiB + 512);
    expect(plan.map((p) => p.problem === null)).toEqual([false, true]);
  });
});

describe("the manager's resize", () => {
  it('resizes each device of the export through its own interface, one log line each', async () => {
    const native = fakeNative();
    const { manager, lines } = managerWith(native, [
      { index: 0 }, { index: 3, method: 'ioctl', blockSize: 4096 }, { index: 4, exportName: 'other' },
    ]);
    await manager.resize('disk', 128 * MiB);
    expect(native.calls).toEqual([
      ['netlink', { index: 0, sizeBytes: 128 * MiB, blockSize: 512, backend: 'dmkit:disk' }],
      ['ioctl', { path: '/dev/nbd3', sizeBytes: 128 * MiB }],
    ]);
    expect(lines.sort()).toEqual([
      `/dev/nbd0: export 'disk' resized: ${64 * MiB} -> ${128 * MiB} bytes (netlink)`,
      `/dev/nbd3: export 'disk' resized: ${64 * MiB} -> ${128 * MiB} bytes (ioctl)`,
    ]);
    expect(manager.attachments.get(0)?.sizeBytes).toBe(128 * MiB);
    expect(manager.attachments.get(4)?.sizeBytes).toBe(64 * MiB);
    await manager.resize('disk', 128 * MiB); // the size it has: nothing to do, nothing said
    expect(native.calls.length).toBe(2);
    expect(lines.length).toBe(2);
  });

  it('a device whose block size does not divide the new size keeps its size and says why', async () => {
    const native = fakeNative();
    const { manager, lines } = managerWith(native, [{ index: 0, blockSize: 4096 }, { index: 1 }]);
    await manager.resize('disk', 64 * MiB + 512);
    expect(native.calls.map(([, p]) => p.index)).toEqual([1]);
    expect(lines).toContain(`/dev/nbd0: export 'disk' now has ${64 * MiB + 512} bytes, but the device keeps its ${64 * MiB}: ` +
      `${64 * MiB + 512} bytes is not a multiple of its 4096-byte block size`);
    expect(manager.attachments.get(0)?.sizeBytes).toBe(64 * MiB);
    expect(manager.attachments.get(1)?.sizeBytes).toBe(64 * MiB + 512);
  });

  it('a kernel that refuses leaves the size as it was, and the resize does not fail', async () => {
    const native = fakeNative({ refuse: true });
    const { manager, lines } = managerWith(native, [{ index: 2 }]);
    await expect(manager.resize('disk', 32 * MiB)).resolves.toBeUndefined();
    expect(lines).toEqual([expect.stringMatching(/^\/dev\/nbd2: export 'disk' now has 33554432 bytes, but the device keeps its 67108864: .*kernel refused NBD_CMD_RECONFIGURE/)]);
    expect(manager.attachments.get(2)?.sizeBytes).toBe(64 * MiB);
  });

  it('a kernel that takes the size but does not apply it (before 5.3): the device keeps its size, said so', async () => {
    const native = fakeNative();
    native.kernelSize = 64 * MiB; // what sysfs would still show
    const { manager, lines } = managerWith(native, [{ index: 2 }]);
    await manager.resize('disk', 128 * MiB);
    expect(native.calls.length).toBe(1);
    expect(lines).toEqual([`/dev/nbd2: export 'disk' now has ${128 * MiB} bytes, but the device keeps its ${64 * MiB}: ` +
      `the kernel accepted the new size but did not apply it (the device shows ${64 * MiB} bytes; ` +
      'resizing a netlink-connected device needs Linux 5.3 or later)']);
    expect(manager.attachments.get(2)?.sizeBytes).toBe(64 * MiB);
  });

  it('resizes of one device run in the order asked', async () => {
    const native = fakeNative();
    const { manager, lines } = managerWith(native, [{ index: 0 }]);
    await Promise.all([manager.resize('disk', 128 * MiB), manager.resize('disk', 32 * MiB)]);
    expect(native.calls.map(([, p]) => p.sizeBytes)).toEqual([128 * MiB, 32 * MiB]);
    expect(lines).toEqual([
      `/dev/nbd0: export 'disk' resized: ${64 * MiB} -> ${128 * MiB} bytes (netlink)`,
      `/dev/nbd0: export 'disk' resized: ${128 * MiB} -> ${32 * MiB} bytes (netlink)`,
    ]);
    expect(manager.attachments.get(0)?.sizeBytes).toBe(32 * MiB);
  });
});

describe('a resume that changes the size, through the registry', () => {
  let registry;
  afterEach(async () => { await registry?.close(); registry = null; });

  it('reaches the attached devices once the resume is done; a resume that keeps the size does not', async () => {
    const dir = tempDir('dmkit-resize-');
    const img = join(dir, 'd.img');
    writeFileSync(img, '');
    truncateSync(img, 64 * MiB);
    registry = await DeviceRegistry.create();
    await registry.create('disk', `0 ${(64 * MiB) / 512} linear ${img} 0`);
    const lines = [];
    const { manager } = createAttacher(/** @type {any} */ ({ serveFd() { throw new Error('not here'); } }), registry, (l) => lines.push(l));
    const native = fakeNative();
    const a = attachment(native, { index: 0 });
    manager.attachments.set(0, a);

    truncateSync(img, 128 * MiB); // grow the image, load a longer table, resume: lvextend
    await registry.reload('disk', `0 ${(128 * MiB) / 512} linear ${img} 0`);
    await registry.suspend('disk');
    await registry.resume('disk');
    expect(native.calls).toEqual([['netlink', { index: 0, sizeBytes: 128 * MiB, blockSize: 512, backend: 'dmkit:disk' }]]);
    expect(a.sizeBytes).toBe(128 * MiB);
    expect(lines).toEqual([`/dev/nbd0: export 'disk' resized: ${64 * MiB} -> ${128 * MiB} bytes (netlink)`]);

    await registry.suspend('disk');
    await registry.resume('disk'); // same table, same size
    expect(native.calls.length).toBe(1);

    await registry.reload('disk', `0 ${(32 * MiB) / 512} linear ${img} 0`); // shrink
    await registry.resume('disk');
    expect(native.calls.at(-1)).toEqual(['netlink', { index: 0, sizeBytes: 32 * MiB, blockSize: 512, backend: 'dmkit:disk' }]);
    expect(a.sizeBytes).toBe(32 * MiB);
  });

  it('a listener that fails does not fail the resume', async () => {
    const dir = tempDir('dmkit-resize-');
    const img = join(dir, 'd.img');
    writeFileSync(img, '');
    truncateSync(img, 2 * MiB);
    registry = await DeviceRegistry.create();
    await registry.create('disk', `0 2048 linear ${img} 0`);
    registry.onSizeChange(async () => { throw new Error('boom'); });
    await registry.reload('disk', `0 4096 linear ${img} 0`);
    await expect(registry.resume('disk')).resolves.toBeUndefined();
    expect(registry.getExport('disk').size()).toBe(2 * MiB);
  });
});
