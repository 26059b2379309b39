// @ts-check
// Block devices as the model's targets see them: a backing disk (a plain byte array) or a
// mapped device (its live table). Every operation runs to completion before it returns: the
// model is the sequential meaning of a vector, which every correct concurrent run must match.

export const SECTOR = 512;

/**
 * @typedef {'read'|'write'|'discard'|'zeroes'|'flush'} Op
 * @typedef {{errno: string|null, data?: Uint8Array}} Result
 * @typedef {object} BlockDev
 * @property {string} name
 * @property {() => number} size sectors
 * @property {(op: Op, sector: number, count: number, data?: Uint8Array) => Result} io
 */

/** A backing disk: bytes in memory; DISCARD and WRITE_ZEROES both leave zeroes (as the hosts do). */
export class Disk {
  /** @param {string} name @param {Uint8Array} bytes */
  constructor(name, bytes) {
    this.name = name;
    this.bytes = bytes;
  }

  size() { return this.bytes.length / SECTOR; }

  /** @param {Op} op @param {number} sector @param {number} count @param {Uint8Array} [data] @returns {Result} */
  io(op, sector, count, data) {
    if (op === 'flush') return { errno: null };
    if (sector + count > this.size()) return { errno: 'EIO' }; // a bio past the end of a disk
    const from = sector * SECTOR, to = (sector + count) * SECTOR;
    if (op === 'read') return { errno: null, data: this.bytes.slice(from, to) };
    if (op === 'write') this.bytes.set(/** @type {Uint8Array} */ (data), from);
    else this.bytes.fill(0, from, to);
    return { errno: null };
  }
}

/** Reads count sectors or throws: for targets whose own reads (chunk copies, metadata) cannot fail here. */
export function mustRead(/** @type {BlockDev} */ dev, /** @type {number} */ sector, /** @type {number} */ count) {
  const r = dev.io('read', sector, count);
  if (r.errno) throw new Error(`model: reading ${dev.name} ${sector}+${count} failed with ${r.errno}`);
  return /** @type {Uint8Array} */ (r.data);
}

/** A little-endian u64 (below 2^53) at `at`. */
export function getU64(/** @type {Uint8Array} */ bytes, /** @type {number} */ at) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 2 ** 32;
}

export function setU64(/** @type {Uint8Array} */ bytes, /** @type {number} */ at, /** @type {number} */ value) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  dv.setUint32(at, value % 2 ** 32, true);
  dv.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
}
