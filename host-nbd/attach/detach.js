// @ts-check
// `dmkit detach /dev/nbdN` from any process: flush, then disconnect through the kernel. The
// device's owner (a running `dmkit serve`, or nbd-client) sees its connections close. A dmkit
// device whose server died is only disconnected: nothing would answer a flush.
import { loadNative } from './native.js';
import { AttachError } from './errors.js';
import { flushBeforeDetach } from './flush.js';
import { chooseMethod, disconnectDevice, waitFor } from './kernel.js';
import { deviceState, parseDevice } from './devices.js';
import { tryLockDevice, unlockDevice } from './locks.js';

/**
 * @param {string} device
 * @param {{force?: boolean, method?: 'netlink' | 'ioctl', log?: (line: string) => void}} [opts]
 * @returns {Promise<string>} what happened, for the user
 */
export async function detachDevice(device, opts = {}) {
  const index = parseDevice(device);
  const path = `/dev/nbd${index}`;
  const log = opts.log ?? (() => {});
  const native = loadNative();
  const method = chooseMethod(native, opts.method);
  const state = deviceState(index);
  if (!state.exists) throw new AttachError(`${path} does not exist`);
  if (!state.bound) throw new AttachError(`${path} is not attached`);

  let lockFd = tryLockDevice(native, index);
  try {
    const orphaned = lockFd !== null && !!state.backend?.startsWith('dmkit:');
    if (!orphaned) await flushBeforeDetach(native, path, !!opts.force, log);
    await disconnectDevice(native, method, index);
    // A live dmkit owner lets go of its lock once its side of every connection has closed: after
    // that, its export is no longer open (so `dmkit remove` works right away).
    if (lockFd === null) {
      await waitFor(() => (lockFd = tryLockDevice(native, index)) !== null, 10_000,
        `${path}: disconnected, but the dmkit server that attached it has not let go of it within 10 s`);
    }
    // The kernel drops the configuration once the owner has let go and nothing holds it open.
    try {
      await waitFor(() => !deviceState(index).bound, 10_000, '');
    } catch {
      return `${path}: disconnected; the kernel keeps it configured until its last user closes it`;
    }
    return orphaned ? `${path}: detached (its server had exited; nothing to flush)` : `${path}: flushed and detached`;
  } finally {
    unlockDevice(native, lockFd);
  }
}
