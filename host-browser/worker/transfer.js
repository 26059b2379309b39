// @ts-check
// Moving whole devices in and out of the browser without holding them in memory. Export copies
// a backing device's bytes, or a mapped device as it reads through the core, into a file in
// OPFS's exports/ folder, which the page hands to the browser's download (a File backed by
// disk). Import streams a picked file, 1 MiB at a time, into a new backing device.
import { DmError, ERRNO } from '../../core-as/js/dmcore.js';
import { diskNameError } from './opfs-disks.js';

const PIECE = 1 << 20;

export class Transfer {
  /**
   * @param {{root: FileSystemDirectoryHandle, core: import('../../core-as/js/dmcore.js').DmCore,
   *   disks: import('./opfs-disks.js').OpfsDisks, host: import('./host.js').Host,
   *   sectors: import('./sector-io.js').SectorIo}} deps
   */
  constructor({ root, core, disks, host, sectors }) {
    this.root = root;
    this.core = core;
    this.disks = disks;
    this.host = host;
    this.sectors = sectors;
  }

  /** A fresh exports/NAME.img (earlier exports are removed: one at a time is kept). */
  async exportFile(fileName) {
    const dir = await this.root.getDirectoryHandle('exports', { create: true });
    // @ts-ignore keys() exists in workers
    for await (const old of dir.keys()) await dir.removeEntry(old);
    const file = await dir.getFileHandle(fileName, { create: true });
    return file.createSyncAccessHandle();
  }

  /** Copies backing device `name` byte for byte. @returns {Promise<{file: string, bytes: number}>} */
  async exportDisk(name) {
    const disk = this.disks.get(name);
    disk.handle.flush();
    const out = await this.exportFile(`${name}.img`);
    try {
      const piece = new Uint8Array(PIECE);
      for (let at = 0; at < disk.bytes; at += PIECE) {
        const n = Math.min(PIECE, disk.bytes - at);
        const view = piece.subarray(0, n);
        if (disk.handle.read(view, { at }) !== n) throw new DmError(ERRNO.EIO, `short read from ${name} at byte ${at}`);
        out.write(view, { at });
      }
      out.flush();
    } finally {
      out.close();
    }
    return { file: `${name}.img`, bytes: disk.bytes };
  }

  /** Copies what mapped device `name` reads, through the core. */
  async exportDevice(name) {
    const sectors = Number(this.core.deviceSize(this.core.findDevice(name)));
    if (sectors === 0) throw new DmError(ERRNO.ENODEV, `device ${name} has no live table`);
    const out = await this.exportFile(`${name}.img`);
    const buf = this.core.alloc(PIECE);
    try {
      for (let s = 0; s < sectors; s += PIECE / 512) {
        const n = Math.min(PIECE / 512, sectors - s);
        await this.sectors.request(name, 0, 0, s, n, buf);
        out.write(this.core.bytes(buf, n * 512), { at: s * 512 });
      }
      out.flush();
    } finally {
      this.core.free(buf);
      out.close();
    }
    return { file: `${name}.img`, bytes: sectors * 512 };
  }

  /** A new backing device `name` holding the file's bytes. @param {Blob} file */
  async importDisk(name, file) {
    const bad = diskNameError(name);
    if (bad) throw new DmError(ERRNO.EINVAL, bad);
    if (file.size === 0 || file.size % 512 !== 0) {
      throw new DmError(ERRNO.EINVAL, `an image must be a whole number of 512-byte sectors; this file has ${file.size} bytes`);
    }
    const disk = await this.disks.create(name, file.size);
    try {
      const reader = new FileReaderSync();
      for (let at = 0; at < file.size; at += PIECE) {
        const bytes = new Uint8Array(reader.readAsArrayBuffer(file.slice(at, Math.min(file.size, at + PIECE))));
        disk.handle.write(bytes, { at });
      }
      disk.handle.flush();
      this.host.attach(disk);
    } catch (e) {
      await this.disks.remove(name);
      throw e;
    }
    return { name, bytes: file.size };
  }
}
