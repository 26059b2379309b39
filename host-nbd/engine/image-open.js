// @ts-check
// What opening an image needs to know and to say (FileBacking.open): whether a path can be served
// at all, before open(2) could hang on it; its size, a block device's from sysfs; which file it
// is whatever its name; and its errors in words a user can act on.
import fs from 'node:fs';

const SECTOR = 512;

/**
 * What makes a file the same file under any name: its device and inode; for a block device the
 * device it stands for (two nodes of one device are one device).
 * @param {import('node:fs').Stats} st
 */
export function identityOf(st) {
  return st.isBlockDevice() ? `block ${st.rdev}` : `file ${st.dev}:${st.ino}`;
}

/**
 * Refuses, before opening it, a path that is neither a regular file nor a block device (a
 * missing one is left to open). Opening decides too late: open(2) of a FIFO for reading waits
 * for a writer, and that would stop the whole server's event loop.
 * @param {string} path
 */
export function refuseUnservable(path) {
  let st;
  try {
    st = fs.statSync(path);
  } catch (e) {
    if (/** @type {any} */ (e).code === 'ENOENT') return;
    throw describeOpenError(path, e);
  }
  if (st.isDirectory()) throw new Error(`${path}: is a directory`);
  if (!st.isFile() && !st.isBlockDevice()) throw new Error(`${path}: not a regular file or block device`);
}

/** What a write to an image opened read-only fails with. @param {string} path */
export function readOnlyError(path) {
  return Object.assign(new Error(`${path} is opened read-only`), { code: 'EROFS' });
}

/** A file's size, or a block device's (sysfs). @param {import('node:fs').Stats} st */
export function sizeOf(st) {
  return st.isBlockDevice() ? blockDeviceSize(st.rdev) : st.size;
}

/** A block device's size from sysfs (fstat says 0 for those; Node has no lseek). */
export function blockDeviceSize(rdev) {
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00);
  const text = fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(text.trim()) * SECTOR;
}

/** @param {string} path @param {any} e what opening it threw */
export function describeOpenError(path, e) {
  const code = e && e.code;
  if (code === 'ENOENT') return Object.assign(new Error(`${path}: no such file (give a size to create it)`), { code });
  if (code === 'EACCES' || code === 'EPERM') return new Error(`${path}: permission denied`);
  if (code === 'EISDIR') return new Error(`${path}: is a directory`);
  if (code === 'EROFS') return new Error(`${path}: on a read-only file system (use --read-only)`);
  return new Error(`${path}: ${e.message}`);
}
