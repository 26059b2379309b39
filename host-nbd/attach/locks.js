// @ts-check
// Which process owns an attached device: the one holding an flock on <run dir>/nbdN.lock. The
// kernel drops the lock when its holder exits, however it exits, so a device that is bound but
// whose lock is free has lost its server: `dmkit attach` may give it new sockets, `dmkit detach`
// knows no flush can be answered. Lock files are never deleted (deleting one races a locker).
import { mkdirSync } from 'node:fs';
import { explain } from './errors.js';

export function runDir() {
  return process.env.DMKIT_RUN_DIR ?? '/run/dmkit';
}

/**
 * Takes the ownership lock of device `index`.
 * @param {import('./native.js').NativeAddon} native
 * @param {number} index
 * @returns {number | null} the descriptor holding the lock, or null if another owner holds it
 */
export function tryLockDevice(native, index) {
  const dir = runDir();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return native.lockFile(`${dir}/nbd${index}.lock`);
  } catch (e) {
    const code = /** @type {any} */ (e).code;
    if (code === 'EWOULDBLOCK' || code === 'EAGAIN') return null;
    throw explain(e, `/dev/nbd${index}`);
  }
}

/** @param {import('./native.js').NativeAddon} native @param {number | null} fd */
export function unlockDevice(native, fd) {
  if (fd !== null) native.closeFd(fd);
}
