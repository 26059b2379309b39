// @ts-check
// Block device I/O that bypasses the page cache (O_DIRECT), so every read shows what the device
// holds now, never what an earlier access left cached. O_DIRECT needs buffers aligned to the
// device's logical block size; a WebAssembly.Memory's buffer always starts on a page boundary
// (V8 maps it as a whole), so every buffer handed to the kernel is carved out of one.
import { open } from 'node:fs/promises';
import { constants } from 'node:fs';
import { execFile } from 'node:child_process';

const SECTOR = 512;
const WASM_PAGE = 65536;

/** A page-aligned buffer of at least `bytes` bytes (its own Memory, freed with it). */
export function alignedBuffer(/** @type {number} */ bytes) {
  const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE));
  return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer, 0, bytes);
}

/** Names the errno of a failed system call or child process (EIO, EINVAL, ...). */
export function errnoOf(/** @type {any} */ e) {
  if (e && typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return e.code;
  return 'EIO';
}

/** A block device opened for direct I/O. FUA writes go through a second, O_DSYNC descriptor: for
 * a direct write that makes the kernel set REQ_FUA (or flush after it, where FUA is missing). */
export class DirectDevice {
  /** @param {string} path */
  static async open(path) {
    const flags = constants.O_RDWR | constants.O_DIRECT;
    const fd = await open(path, flags);
    try {
      return new DirectDevice(path, fd, await open(path, flags | constants.O_DSYNC));
    } catch (e) {
      await fd.close();
      throw e;
    }
  }

  /** @param {string} path @param {import('node:fs/promises').FileHandle} fd @param {import('node:fs/promises').FileHandle} fuaFd */
  constructor(path, fd, fuaFd) {
    this.path = path;
    this.fd = fd;
    this.fuaFd = fuaFd;
  }

  /** Reads `count` sectors at `sector`; a short read (the end of the device) is an error. */
  async read(/** @type {number} */ sector, /** @type {number} */ count) {
    const buf = alignedBuffer(count * SECTOR);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.fd.read(buf, done, buf.length - done, sector * SECTOR + done);
      if (bytesRead === 0) throw Object.assign(new Error(`${this.path}: short read at sector ${sector}`), { code: 'EIO' });
      done += bytesRead;
    }
    return new Uint8Array(buf);
  }

  /** Writes `bytes` (a whole number of sectors) at `sector`. */
  async write(/** @type {number} */ sector, /** @type {Uint8Array} */ bytes, fua = false) {
    const buf = alignedBuffer(bytes.length);
    buf.set(bytes);
    const fd = fua ? this.fuaFd : this.fd;
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fd.write(buf, done, buf.length - done, sector * SECTOR + done);
      if (bytesWritten === 0) throw Object.assign(new Error(`${this.path}: short write at sector ${sector}`), { code: 'ENOSPC' });
      done += bytesWritten;
    }
  }

  /** fsync on a block device sends a FLUSH (blkdev_fsync). */
  async flush() {
    await this.fd.sync();
  }

  /** BLKDISCARD through blkdiscard(8) (Node has no ioctl). */
  discard(/** @type {number} */ sector, /** @type {number} */ count) {
    return tool('blkdiscard', ['--force', '--offset', String(sector * SECTOR), '--length', String(count * SECTOR), this.path]);
  }

  /** A WRITE_ZEROES request, with no fallback: fallocate(PUNCH_HOLE|KEEP_SIZE) on a block device
   * is blkdev_issue_zeroout(..., BLKDEV_ZERO_NOFALLBACK), which fails with EOPNOTSUPP where the
   * device has no write-zeroes (BLKZEROOUT would quietly write zero pages instead). */
  zeroes(/** @type {number} */ sector, /** @type {number} */ count) {
    return tool('fallocate', ['--punch-hole', '--offset', String(sector * SECTOR), '--length', String(count * SECTOR), this.path]);
  }

  async close() {
    await Promise.all([this.fd.close(), this.fuaFd.close()]);
  }
}

/** Runs blkdiscard(8) or fallocate(1); their errors name the ioctl's failure in strerror text.
 * @param {string} cmd @param {string[]} args */
function tool(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, _stdout, stderr) => {
      if (!err) return resolve(undefined);
      const code = /not supported|unsupported/i.test(stderr) ? 'EOPNOTSUPP' : /invalid argument/i.test(stderr) ? 'EINVAL' : 'EIO';
      reject(Object.assign(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim()}`), { code }));
    });
  });
}
