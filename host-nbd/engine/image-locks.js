// @ts-check
// One server per image file. Two processes writing one image overwrite each other: two servers
// on one COW device each write their own metadata over the other's, and an origin written by
// one never copies out to the other's snapshot. So every image opened for writing is locked
// with flock(LOCK_EX | LOCK_NB) (the native addon's lockFile, on a descriptor of its own), and
// an image locked by another process is refused with a message. The kernel drops the lock
// when its holder exits, however it exits, so a killed server leaves no stale lock. Read-only
// opens take no lock. flock does not see qemu's fcntl (OFD) locks or anyone who takes none
// (nbdkit): it keeps dmkit processes apart (`dmkit serve`, `dmkit snapshot merge`).
//
// Within this process a file is locked once, however many times it is open: flock also refuses
// a second descriptor of the same process, and a file closed after its last command (a retired
// table's) may still be open when a new table opens it again.
import { loadBuiltAddon } from '../addon/built.js';

/**
 * @typedef {{lock: (path: string, identity: string) => void, unlock: (identity: string) => void}} ImageLocks
 * identity: the file's, whatever its name (image-open.js identityOf). lock throws an Error
 * naming the file when another process holds it or the lock cannot be taken; each lock is
 * matched by one unlock.
 */

/** identity -> the descriptor holding the lock, and how many openings in this process use it */
const held = new Map();

/** @returns {{locks: ImageLocks | null, why: string | null}} */
export function loadImageLocks() {
  const { addon, why } = loadBuiltAddon('image locks', 'lockFile');
  if (!addon) return { locks: null, why };
  return {
    locks: {
      lock(path, identity) {
        const mine = held.get(identity);
        if (mine) { mine.users++; return; }
        let fd;
        try {
          fd = addon.lockFile(path);
        } catch (e) {
          const code = /** @type {any} */ (e).code;
          if (code === 'EWOULDBLOCK' || code === 'EAGAIN') {
            throw Object.assign(new Error(`${path}: in use by another process, which holds a lock on it ` +
              '(another dmkit serve?): one process at a time may write an image'), { code: 'EBUSY' });
          }
          throw new Error(`${path}: cannot lock it: ${e instanceof Error ? e.message : e}`);
        }
        held.set(identity, { fd, users: 1 });
      },
      unlock(identity) {
        const mine = held.get(identity);
        if (!mine || --mine.users > 0) return;
        held.delete(identity);
        addon.closeFd(mine.fd);
      },
    },
    why: null,
  };
}
