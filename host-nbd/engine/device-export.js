// @ts-check
// A mapped device seen as an NBD export: byte offsets become sector requests to the core.
// Aligned requests go straight through with their payload in core memory; unaligned ones are
// widened to whole sectors (reads) or read-modify-written under a range lock (writes).
import { OP, FLAG, ERRNO } from '../../core-as/js/dmcore.js';
import { RangeLocks } from './range-lock.js';
import { NbdError } from '../protocol/errors.js';

const SECTOR = 512;
const MAX_REQUEST = 32 << 20;

/** Core statuses are Linux errnos; NBD has its own short list. */
function nbdError(status, what) {
  const known = [ERRNO.EPERM, ERRNO.EIO, ERRNO.ENOMEM, ERRNO.EINVAL, ERRNO.ENOSPC];
  const code = status === ERRNO.EOPNOTSUPP ? 95 : known.includes(status) ? status : ERRNO.EIO;
  return new NbdError(code, `${what} failed with errno ${status}`);
}

export class DeviceExport {
  /**
   * @param {import('./engine.js').Engine} engine
   * @param {string} name mapped device name
   * @param {{readOnly?: boolean, description?: string}} [opts]
   */
  constructor(engine, name, opts = {}) {
    this.engine = engine;
    this.core = engine.core;
    this.name = name;
    this.id = this.core.findDevice(name);
    this.description = opts.description ?? `dmkit mapped device ${name}`;
    this.readOnly = !!opts.readOnly;
    this.multiConn = true; // one process, writes acked when done, flush reaches every file
    this.blockSize = { min: 1, preferred: 4096, max: MAX_REQUEST };
    this.canTrim = true;
    this.canWriteZeroes = true;
    this.canFastZero = false; // zeroing is not guaranteed faster than writing
    this.canFlush = true;
    this.canFua = true;
    this.canCache = true;
    this.canBlockStatus = true;
    this.locks = new RangeLocks();
  }

  size() {
    return Number(this.core.deviceSize(this.id)) * SECTOR;
  }

  open() { this.core.openDevice(this.id); }
  close() { this.core.closeDevice(this.id); }

  /** A lease over core memory: view() is re-fetched after every await. */
  lease(ptr, offset, length) {
    const core = this.core;
    return {
      view: () => core.bytes(ptr + offset, length),
      release: () => core.free(ptr),
    };
  }

  async read(offset, length) {
    const first = Math.floor(offset / SECTOR);
    const last = Math.ceil((offset + length) / SECTOR);
    const count = last - first;
    const ptr = this.core.alloc(Math.max(count * SECTOR, 1));
    const status = count === 0 ? 0 : await this.engine.io(this.id, OP.READ, 0, first, count, ptr);
    if (status !== 0) {
      this.core.free(ptr);
      throw nbdError(status, `read of ${length} bytes at ${offset}`);
    }
    return this.lease(ptr, offset - first * SECTOR, length);
  }

  writeBuffer(length) {
    return this.lease(this.core.alloc(Math.max(length, 1)), 0, length);
  }

  async write(offset, data, fua) {
    try {
      const length = data.view().length;
      if (offset % SECTOR === 0 && length % SECTOR === 0) {
        await this.aligned(offset, length, fua, data);
      } else {
        await this.readModifyWrite(offset, data, length, fua);
      }
    } finally {
      data.release();
    }
  }

  /** Writes whole sectors from the lease, waiting only for read-modify-writes it overlaps. */
  async aligned(offset, length, fua, data) {
    const first = offset / SECTOR, count = length / SECTOR;
    const unlock = await this.locks.acquire(first, first + count, false);
    try {
      const ptr = data.view().byteOffset;
      await this.sectorOp(OP.WRITE, fua, first, count, ptr, `write of ${length} bytes at ${offset}`);
    } finally {
      unlock();
    }
  }

  async readModifyWrite(offset, data, length, fua) {
    const first = Math.floor(offset / SECTOR);
    const last = Math.ceil((offset + length) / SECTOR);
    const count = last - first;
    const unlock = await this.locks.acquire(first, last, true);
    const ptr = this.core.alloc(count * SECTOR);
    try {
      const what = `write of ${length} bytes at ${offset}`;
      // Only the edge sectors need their old contents.
      await this.sectorOp(OP.READ, false, first, 1, ptr, what);
      if (count > 1) await this.sectorOp(OP.READ, false, last - 1, 1, ptr + (count - 1) * SECTOR, what);
      this.core.bytes(ptr + (offset - first * SECTOR), length).set(data.view());
      await this.sectorOp(OP.WRITE, fua, first, count, ptr, what);
    } finally {
      this.core.free(ptr);
      unlock();
    }
  }

  async sectorOp(op, fua, sector, count, ptr, what) {
    const status = await this.engine.io(this.id, op, fua ? FLAG.FUA : 0, sector, count, ptr);
    if (status !== 0) throw nbdError(status, what);
  }

  async flush() {
    await this.sectorOp(OP.FLUSH, false, 0, 0, 0, 'flush');
  }

  async trim(offset, length, fua) {
    // Only whole sectors can be discarded; the partial edges keep their data (trim is advisory).
    const first = Math.ceil(offset / SECTOR);
    const last = Math.floor((offset + length) / SECTOR);
    if (last > first) await this.rangeOp(OP.DISCARD, fua, first, last, `trim of ${length} bytes at ${offset}`);
  }

  async writeZeroes(offset, length, opts) {
    const first = Math.ceil(offset / SECTOR);
    const last = Math.floor((offset + length) / SECTOR);
    const what = `write-zeroes of ${length} bytes at ${offset}`;
    // Partial sectors at the edges are ordinary writes of zero bytes.
    const headEnd = Math.min(offset + length, first * SECTOR);
    if (headEnd > offset) await this.writeZeroBytes(offset, headEnd - offset, opts.fua);
    if (last > first) await this.rangeOp(OP.WRITE_ZEROES, opts.fua, first, last, what);
    const tailStart = Math.max(offset, last * SECTOR, headEnd);
    if (offset + length > tailStart) await this.writeZeroBytes(tailStart, offset + length - tailStart, opts.fua);
  }

  async writeZeroBytes(offset, length, fua) {
    const buf = this.writeBuffer(length);
    buf.view().fill(0);
    await this.write(offset, buf, fua);
  }

  /** DISCARD / WRITE_ZEROES on whole sectors, in pieces the core takes in one u32 count. */
  async rangeOp(op, fua, first, last, what) {
    const unlock = await this.locks.acquire(first, last, false);
    try {
      for (let s = first; s < last; s += 1 << 30) {
        const n = Math.min(1 << 30, last - s);
        const status = await this.engine.io(this.id, op, fua ? FLAG.FUA : 0, s, n, 0);
        if (status === ERRNO.EOPNOTSUPP && op === OP.WRITE_ZEROES) await this.zeroByWriting(s, n, fua, what);
        else if (status === ERRNO.EOPNOTSUPP && op === OP.DISCARD) continue; // trim is advisory
        else if (status !== 0) throw nbdError(status, what);
      }
    } finally {
      unlock();
    }
  }

  /** For targets without WRITE_ZEROES: write zero-filled buffers instead. */
  async zeroByWriting(sector, count, fua, what) {
    const chunk = 2048;
    const ptr = this.core.alloc(chunk * SECTOR);
    try {
      for (let s = sector; s < sector + count; s += chunk) {
        const n = Math.min(chunk, sector + count - s);
        this.core.bytes(ptr, n * SECTOR).fill(0);
        await this.sectorOp(OP.WRITE, fua, s, n, ptr, what);
      }
    } finally {
      this.core.free(ptr);
    }
  }

  async cache(offset, length) {
    // Reading warms the page cache of every backing file under the range.
    const lease = await this.read(offset, length);
    lease.release();
  }

  async blockStatus(offset, length) {
    // The core does not track allocation yet: report the range as allocated data.
    return [{ length, flags: 0 }];
  }
}
