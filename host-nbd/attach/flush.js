// @ts-check
// The flush that comes before every detach: the device's dirty pages are written and a FLUSH goes
// through the kernel to the server, so nothing the kernel acknowledged is lost. A device that is
// in use (mounted, held by device-mapper) is refused unless the caller insists; then every
// filesystem is written back first, since a mounted filesystem keeps its dirty data in its files.
import { AttachError, explain } from './errors.js';

/**
 * @param {import('./native.js').NativeAddon} native
 * @param {string} path
 * @param {boolean} evenIfInUse
 * @param {(line: string) => void} log
 */
export async function flushBeforeDetach(native, path, evenIfInUse, log) {
  try {
    await native.flushDevice(path, true);
    return;
  } catch (e) {
    if (/** @type {any} */ (e).code !== 'EBUSY') throw explain(e, path);
    if (!evenIfInUse) {
      throw new AttachError(`${path} is in use (mounted, or held by device-mapper or another exclusive user): ` +
        'unmount it first, or detach with --force', 'EBUSY');
    }
  }
  log(`${path} is in use; writing back every filesystem before detaching it`);
  await native.syncAll();
  try {
    await native.flushDevice(path, false);
  } catch (e) {
    throw explain(e, path);
  }
}
