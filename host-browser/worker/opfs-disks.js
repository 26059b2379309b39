// @ts-check
// Backing devices as files in the Origin Private File System. This worker owns one
// FileSystemSyncAccessHandle per file for as long as the file exists: handles are exclusive,
// and synchronous reads and writes straight into the core's memory need no copies.

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SECTOR = 512;

/** @typedef {{name: string, handle: FileSystemSyncAccessHandle, bytes: number, id: number}} Disk */

/** Why a backing device name cannot be used ('' when it can). */
export function diskNameError(name) {
  if (typeof name !== 'string' || !NAME.test(name)) {
    return `backing device name '${name}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`;
  }
  return '';
}

/** Why a size in bytes cannot be a backing device's size ('' when it can). */
export function diskSizeError(bytes) {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return `size must be a positive number of bytes, not ${bytes}`;
  if (bytes % SECTOR !== 0) return `size ${bytes} is not a multiple of 512 bytes (one sector)`;
  return '';
}

export class OpfsDisks {
  /** @param {FileSystemDirectoryHandle} dir */
  constructor(dir) {
    this.dir = dir;
    /** @type {Map<string, Disk>} */
    this.byName = new Map();
  }

  /** Opens every file in the folder (the devices of earlier visits). */
  static async open(root, folder = 'disks') {
    const dir = await root.getDirectoryHandle(folder, { create: true });
    const disks = new OpfsDisks(dir);
    // @ts-ignore entries() is there in workers
    for await (const [name, entry] of dir.entries()) {
      if (entry.kind !== 'file' || diskNameError(name)) continue;
      const handle = await entry.createSyncAccessHandle();
      disks.byName.set(name, { name, handle, bytes: handle.getSize(), id: -1 });
    }
    return disks;
  }

  list() {
    return [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name) {
    const d = this.byName.get(name);
    if (!d) throw Object.assign(new Error(`no backing device named ${name}`), { code: 'ENOENT' });
    return d;
  }

  /** Creates an empty (all zero) file of `bytes`. */
  async create(name, bytes) {
    const bad = diskNameError(name) || diskSizeError(bytes);
    if (bad) throw Object.assign(new Error(bad), { code: 'EINVAL' });
    if (this.byName.has(name)) throw Object.assign(new Error(`backing device ${name} already exists`), { code: 'EEXIST' });
    const file = await this.dir.getFileHandle(name, { create: true });
    const handle = await file.createSyncAccessHandle();
    try {
      handle.truncate(bytes);
      handle.flush();
    } catch (e) {
      handle.close();
      await this.dir.removeEntry(name);
      throw e;
    }
    const disk = { name, handle, bytes, id: -1 };
    this.byName.set(name, disk);
    return disk;
  }

  /** Sets the file's size; growing adds zeroes. */
  resize(name, bytes) {
    const bad = diskSizeError(bytes);
    if (bad) throw Object.assign(new Error(bad), { code: 'EINVAL' });
    const d = this.get(name);
    d.handle.truncate(bytes);
    d.handle.flush();
    d.bytes = bytes;
  }

  async remove(name) {
    const d = this.get(name);
    d.handle.close();
    this.byName.delete(name);
    await this.dir.removeEntry(name);
  }

  flushAll() {
    for (const d of this.byName.values()) d.handle.flush();
  }
}
