// @ts-check
// Handing connected sockets to the kernel, and taking them back: the netlink interface where the
// kernel has it, the ioctl interface otherwise. Either can be forced (option or DMKIT_NBD_METHOD),
// which is how the tests exercise both on one kernel.
import { AttachError, MODULE_HINT, nbdModuleLoaded, explain } from './errors.js';
import { deviceState } from './devices.js';

export const METHODS = /** @type {const} */ (['netlink', 'ioctl']);

/**
 * @param {import('./native.js').NativeAddon} native
 * @param {string} [forced] 'netlink' | 'ioctl' | undefined (auto)
 * @returns {'netlink' | 'ioctl'}
 */
export function chooseMethod(native, forced = process.env.DMKIT_NBD_METHOD || undefined) {
  if (forced !== undefined && !METHODS.includes(/** @type {any} */ (forced))) {
    throw new AttachError(`unknown attach method '${forced}' (expected netlink or ioctl)`);
  }
  let netlink;
  try {
    netlink = native.netlinkProbe();
  } catch (e) {
    throw explain(e, '');
  }
  if (forced === 'netlink' && !netlink) {
    throw new AttachError(nbdModuleLoaded() ? 'this kernel has no NBD netlink interface (use --method ioctl)' : MODULE_HINT);
  }
  if (forced) {
    if (forced === 'ioctl' && !nbdModuleLoaded()) throw new AttachError(MODULE_HINT);
    return /** @type {'netlink' | 'ioctl'} */ (forced);
  }
  if (netlink) return 'netlink';
  if (!nbdModuleLoaded()) throw new AttachError(MODULE_HINT);
  return 'ioctl';
}

/**
 * @typedef {object} KernelParams
 * @property {number} index
 * @property {number} sizeBytes
 * @property {number} blockSize
 * @property {number} flags          transmission flags from the handshake
 * @property {number} timeout        per-request timeout in seconds (0: none)
 * @property {number} deadTimeout    seconds I/O waits for new sockets once all died (netlink)
 * @property {number[]} fds          client ends, in transmission phase
 * @property {string} backend
 */

/**
 * Connects the device. Resolves once the kernel serves it; `running` settles when the kernel lets
 * go of it (ioctl: when NBD_DO_IT returns; netlink: null, the kernel holds the sockets itself).
 * @param {import('./native.js').NativeAddon} native
 * @param {'netlink' | 'ioctl'} method
 * @param {KernelParams} p
 * @returns {Promise<{running: Promise<void> | null}>}
 */
export async function connectDevice(native, method, p) {
  const path = `/dev/nbd${p.index}`;
  if (method === 'netlink') {
    try {
      native.netlinkConnect({
        index: p.index, sizeBytes: p.sizeBytes, blockSize: p.blockSize, serverFlags: p.flags,
        timeout: p.timeout, deadConnTimeout: p.deadTimeout, fds: p.fds, backend: p.backend,
      });
    } catch (e) {
      throw explain(e, path);
    }
    return { running: null };
  }
  /** @type {(err: Error | null) => void} */
  let onReady = () => {};
  const ready = new Promise((resolve, reject) => {
    onReady = (err) => (err ? reject(explain(err, path)) : resolve(undefined));
  });
  const running = native.ioctlAttach(
    { path, sizeBytes: p.sizeBytes, blockSize: p.blockSize, flags: p.flags, timeout: p.timeout, fds: p.fds },
    (err) => onReady(err),
  );
  running.catch(() => {}); // watched by the caller; never an unhandled rejection
  await ready;
  // NBD_DO_IT starts the device on its thread; the kernel publishes the pid file when it has.
  await Promise.race([
    waitFor(() => deviceState(p.index).bound, 10_000, `${path} did not start after NBD_DO_IT`),
    running.then(
      () => { throw new AttachError(`${path} stopped right after it started`); },
      (e) => { throw explain(e, path); },
    ),
  ]);
  return { running };
}

/**
 * Gives a bound device whose connections died new sockets (NBD_CMD_RECONFIGURE).
 * @param {import('./native.js').NativeAddon} native
 * @param {KernelParams} p
 */
export async function reconnectDevice(native, p) {
  try {
    await native.netlinkReconfigure({
      index: p.index, timeout: p.timeout, deadConnTimeout: p.deadTimeout, fds: p.fds, backend: p.backend,
    });
  } catch (e) {
    throw explain(e, `/dev/nbd${p.index}`);
  }
}

/**
 * Gives a running device a new size (bytes, a multiple of its block size, which it keeps):
 * NBD_CMD_RECONFIGURE with NBD_ATTR_SIZE_BYTES (netlink), NBD_SET_SIZE (ioctl). Either makes the
 * kernel set the new capacity at once (nbd_set_size: set_capacity_and_notify).
 * @param {import('./native.js').NativeAddon} native
 * @param {'netlink' | 'ioctl'} method
 * @param {{index: number, sizeBytes: number, blockSize: number, backend: string}} p
 */
export async function resizeDevice(native, method, p) {
  const path = `/dev/nbd${p.index}`;
  try {
    if (method === 'netlink') await native.netlinkResize({ index: p.index, sizeBytes: p.sizeBytes, blockSize: p.blockSize, backend: p.backend });
    else await native.ioctlSetSize(path, p.sizeBytes);
  } catch (e) {
    throw explain(e, path);
  }
}

/**
 * Disconnects a device: the kernel sends NBD_CMD_DISC on every socket and shuts them down.
 * Netlink works on devices connected either way; ioctl is for kernels without netlink.
 * @param {import('./native.js').NativeAddon} native
 * @param {'netlink' | 'ioctl'} method
 * @param {number} index
 */
export async function disconnectDevice(native, method, index) {
  try {
    if (method === 'netlink') await native.netlinkDisconnect(index);
    else await native.ioctlDisconnect(`/dev/nbd${index}`);
  } catch (e) {
    throw explain(e, `/dev/nbd${index}`);
  }
}

/** Polls `test` every 20 ms until it holds; rejects with `message` after `ms`. */
export async function waitFor(test, ms, message) {
  const until = Date.now() + ms;
  while (!test()) {
    if (Date.now() > until) throw new AttachError(message);
    await new Promise((r) => setTimeout(r, 20));
  }
}
