// @ts-check
// The flush that comes before every detach: the device's dirty pages are written and a FLUSH goes
// through the kernel to the server, so nothing the kernel acknowledged is lost.
// Refused without `insist` (--force, or the server stopping): a device that is in use (mounted,
// held by device-mapper), and a flush that fails (the data might not be durable). With `insist`,
// every filesystem is written back first (a mounted filesystem keeps its dirty data in its own
// files), and a failed flush is reported and the detach goes on.
import { AttachError, explain } from './errors.js';

/**
 * @param {import('./native.js').NativeAddon} native
 * @param {string} path
 * @param {boolean} insist
 * @param {(line: string) => void} log
 */
export async function flushBeforeDetach(native, path, insist, log) {
  let exclusive = true;
  try {
    await native.flushDevice(path, true);
    return;
  } catch (e) {
    if (/** @type {any} */ (e).code !== 'EBUSY') {
      failed(e, path, insist, log);
      return;
    }
    if (!insist) {
      throw new AttachError(`${path} is in use (mounted, or held by device-mapper or another exclusive user): ` +
        'unmount it first, or detach with --force', 'EBUSY');
    }
    exclusive = false;
  }
  log(`${path} is in use; writing back every filesystem before detaching it`);
  await native.syncAll();
  try {
    await native.flushDevice(path, exclusive);
  } catch (e) {
    failed(e, path, insist, log);
  }
}

function failed(e, path, insist, log) {
  const why = explain(e, path).message;
  if (!insist) {
    throw new AttachError(`the flush before detaching failed, so what was written may not be durable (${why}); ` +
      'detach with --force to detach anyway', /** @type {any} */ (e).code);
  }
  log(`the flush before detaching ${path} failed, detaching anyway: ${why}`);
}
