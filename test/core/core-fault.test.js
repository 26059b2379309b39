// A core that trapped mid-call has memory in an unknown state: it must never be called again
// (core-as/js/dmcore.js, CoreFault), and the hosts must say so instead of carrying on.
import { describe, it, expect } from 'vitest';
import { DmCore, DmError, CoreFault, ERRNO } from '../../core-as/js/dmcore.js';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';

/** Makes the core trap for real: a name pointer past the end of its memory. */
function trap(core) {
  return () => core.x.dm_dev_find(core.memory.buffer.byteLength - 2, 64);
}

describe('a core that trapped', () => {
  it('throws a CoreFault (EIO) saying so, tells onFault once, and is never entered again', async () => {
    const core = await DmCore.load();
    const faults = [];
    core.onFault = (f) => faults.push(f);
    let fault;
    try {
      trap(core)();
    } catch (e) {
      fault = e;
    }
    expect(fault).toBeInstanceOf(CoreFault);
    expect(fault).toBeInstanceOf(DmError);
    expect(fault.errno).toBe(ERRNO.EIO);
    expect(fault.cause).toBeInstanceOf(WebAssembly.RuntimeError);
    expect(fault.message).toMatch(/^the dmkit core failed: .*out of bounds.*restart to recover$/);
    // Every later call fails the same way, without running the core: listDevices would work.
    expect(() => core.listDevices()).toThrow(fault);
    expect(() => core.createDevice('x')).toThrow(fault);
    expect(faults).toEqual([fault]);
  });

  it('a wrong argument at the boundary (no call into the core happened) leaves it working', async () => {
    const core = await DmCore.load();
    expect(() => core.x.dm_submit(0, 0, 0, 5, 1, 0, 1)).toThrow(TypeError); // sector must be a BigInt
    expect(core.fault).toBeNull();
    expect(core.createDevice('still-fine')).toBeGreaterThanOrEqual(0);
  });

  it('the NBD host refuses control commands with the fault from then on, and logs it once with its stack', async () => {
    const lines = [];
    const registry = await DeviceRegistry.create({ log: (l) => lines.push(l) });
    expect(() => trap(registry.core)()).toThrow(CoreFault);
    await expect(registry.create('d', '0 8 zero')).rejects.toThrow(/^the dmkit core failed: .*restart to recover$/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^the dmkit core failed: [^\n]*\nRuntimeError: .*\n\s+at /);
  });
});
