// @ts-check
// Backing disks for kernel-side runs: loop devices over files in a scratch folder (tmpfs in the
// guest). The file is the disk's ground truth: the loop driver reads and writes it through the
// file's page cache, so reading the file shows every write the kernel completed on the device.
//
// Starting losetup costs ~0.3-0.7 s in the emulated guest, so devices are pooled: a disk that is
// given back keeps its loop device, and the next disk of the same size gets it with fresh
// contents written into the file. That is safe because nothing here reads or writes the loop
// device through its own page cache (dm targets send bios to it, tests read the file).
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

/** Writes `bytes` (zeros when null) as the whole contents of a `sectors`-long file. */
async function fill(/** @type {string} */ file, /** @type {number} */ sectors, /** @type {Uint8Array|null} */ bytes) {
  await writeFile(file, bytes ?? '');
  await truncate(file, sectors * 512);
}

export class LoopPool {
  /** @param {string} dir where the backing files live */
  constructor(dir) {
    this.dir = dir;
    /** @type {LoopDisk[]} attached and free */
    this.free = [];
    /** @type {Set<LoopDisk>} attached and in use */
    this.busy = new Set();
    this.next = 0;
  }

  /**
   * A loop device of `sectors` sectors holding `bytes` (zeros when null), named `name`.
   * @param {string} name @param {number} sectors @param {Uint8Array|null} bytes
   * @returns {Promise<LoopDisk>}
   */
  async take(name, sectors, bytes) {
    const i = this.free.findIndex((d) => d.sectors === sectors);
    let disk;
    if (i >= 0) {
      disk = { ...this.free.splice(i, 1)[0], name };
      await fill(disk.file, sectors, bytes);
    } else {
      const file = join(this.dir, `loop-${this.next++}.img`);
      await fill(file, sectors, bytes);
      disk = { name, file, path: await losetup(['--find', '--show', file]), sectors };
    }
    this.busy.add(disk);
    return disk;
  }

  /** Back to the pool (when nothing uses the device any more). */
  give(/** @type {LoopDisk} */ disk) {
    this.busy.delete(disk);
    this.free.push(disk);
  }

  /** Detaches a device that cannot be reused (something may still hold it). */
  async discard(/** @type {LoopDisk} */ disk) {
    this.busy.delete(disk);
    await losetup(['--detach', disk.path]).catch(() => {});
  }

  /** Detaches every device, in one losetup run, and deletes the files. */
  async close() {
    const all = [...this.free, ...this.busy];
    this.free = [];
    this.busy.clear();
    if (all.length) await losetup(['--detach', ...all.map((d) => d.path)]);
    await Promise.all(all.map((d) => rm(d.file, { force: true })));
  }
}

/** The disk's whole contents, read from its file. */
export function diskBytes(/** @type {LoopDisk} */ disk) {
  return readFile(disk.file);
}
