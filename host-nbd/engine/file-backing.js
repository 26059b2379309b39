// @ts-check
// A raw image file as a backing device: positional reads and writes straight into and out of
// the core's memory, fdatasync for flush and FUA, and zeroing that keeps sparse files sparse.
import { promises as fsp, constants as C } from 'node:fs';

const SECTOR = 512;
const ZERO_CHUNK = 1 << 20;

export class FileBacking {
  /**
   * @param {string} path
   * @param {import('node:fs/promises').FileHandle} handle
   * @param {number} bytes
   * @param {boolean} readOnly
   */
  constructor(path, handle, bytes, readOnly) {
    this.path = path;
    this.handle = handle;
    this.bytes = bytes;
    this.readOnly = readOnly;
    this.zeroes = new Uint8Array(ZERO_CHUNK);
    this.scratch = new Uint8Array(ZERO_CHUNK);
  }

  /**
   * Opens an existing image (or block device file). With createBytes, a missing file is created
   * sparse at that size. Sizes must be whole sectors.
   * @param {string} path @param {{readOnly?: boolean, createBytes?: number}} [opts]
   */
  static async open(path, opts = {}) {
    const readOnly = !!opts.readOnly;
    let handle;
    try {
      handle = await fsp.open(path, readOnly ? C.O_RDONLY : C.O_RDWR);
    } catch (e) {
      if (/** @type {any} */ (e).code !== 'ENOENT' || !opts.createBytes) throw describeOpenError(path, e);
      handle = await fsp.open(path, C.O_RDWR | C.O_CREAT | C.O_EXCL, 0o644);
      await handle.truncate(opts.createBytes);
    }
    const st = await handle.stat();
    let bytes = st.size;
    if (st.isBlockDevice()) bytes = await blockDeviceSize(handle);
    else if (!st.isFile()) {
      await handle.close();
      throw new Error(`${path}: not a regular file or block device`);
    }
    if (bytes % SECTOR !== 0) {
      await handle.close();
      throw new Error(`${path}: size ${bytes} is not a multiple of 512 bytes`);
    }
    return new FileBacking(path, handle, bytes, readOnly);
  }

  get sectors() { return this.bytes / SECTOR; }

  /** @param {Uint8Array} into @param {number} position */
  async read(into, position) {
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await this.handle.read(into, done, into.length - done, position + done);
      if (bytesRead === 0) { into.fill(0, done); return; } // a file shrunk under us reads as zeroes
      done += bytesRead;
    }
  }

  /** @param {Uint8Array} from @param {number} position */
  async write(from, position) {
    if (this.readOnly) throw Object.assign(new Error(`${this.path} is read-only`), { code: 'EROFS' });
    let done = 0;
    while (done < from.length) {
      const { bytesWritten } = await this.handle.write(from, done, from.length - done, position + done);
      done += bytesWritten;
    }
  }

  async flush() {
    if (!this.readOnly) await this.handle.datasync();
  }

  /**
   * Makes [position, position + length) read as zeroes, writing only the parts that are not
   * zero already: a discard over a sparse image then allocates nothing.
   */
  async zero(position, length) {
    const end = position + length;
    for (let at = position; at < end; at += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, end - at);
      const current = this.scratch.subarray(0, n);
      await this.read(current, at);
      if (!isAllZero(current)) await this.write(this.zeroes.subarray(0, n), at);
    }
  }

  async close() {
    await this.handle.close();
  }
}

/** @param {Uint8Array} bytes */
function isAllZero(bytes) {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  for (let i = words.length << 2; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** A block device's size, read by seeking to its end (fstat says 0 for those). */
async function blockDeviceSize(handle) {
  // No lseek in Node: read the size from sysfs through the device number (Linux dev_t layout).
  const { rdev } = await handle.stat();
  const major = (rdev >>> 8) & 0xfff, minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  const text = await fsp.readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(text.trim()) * SECTOR;
}

function describeOpenError(path, e) {
  const code = e && e.code;
  if (code === 'ENOENT') return new Error(`${path}: no such file (give a size to create it)`);
  if (code === 'EACCES' || code === 'EPERM') return new Error(`${path}: permission denied`);
  if (code === 'EISDIR') return new Error(`${path}: is a directory`);
  return new Error(`${path}: ${e.message}`);
}
