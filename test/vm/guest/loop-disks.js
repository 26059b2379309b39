// @ts-check
// Backing disks for kernel-side runs: a file per disk in a scratch folder (tmpfs in the guest),
// attached as a loop device. The file is the disk's ground truth: the loop driver writes through
// to it, so reading the file shows every write the kernel completed on the loop device.
import { writeFile, readFile, rm, truncate } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';

/** @typedef {{name:string, file:string, path:string, sectors:number}} LoopDisk */

/** @param {string[]} args @returns {Promise<string>} */
function losetup(args) {
  return new Promise((resolve, reject) => {
    execFile('losetup', args, (err, stdout, stderr) => {
      if (err) reject(new Error(`losetup ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else resolve(stdout.trim());
    });
  });
}

/**
 * Creates `dir/name.img` of `sectors` sectors holding `bytes` (zeros when null) and attaches it.
 * @param {string} dir @param {string} name @param {number} sectors @param {Uint8Array|null} bytes
 * @returns {Promise<LoopDisk>}
 */
export async function attachDisk(dir, name, sectors, bytes) {
  const file = join(dir, `${name}.img`);
  if (bytes) await writeFile(file, bytes);
  else await writeFile(file, '');
  await truncate(file, sectors * 512);
  const path = await losetup(['--find', '--show', file]);
  return { name, file, path, sectors };
}

/** Detaches the loop device and deletes its file. */
export async function detachDisk(/** @type {LoopDisk} */ disk) {
  await losetup(['--detach', disk.path]);
  await rm(disk.file, { force: true });
}

/** The disk's whole contents, read from its file. */
export function diskBytes(/** @type {LoopDisk} */ disk) {
  return readFile(disk.file);
}
