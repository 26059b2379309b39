// @ts-check
// TRIM and WRITE_ZEROES on an export (DeviceExport.trim, writeZeroes): whole sectors go to the
// core as one DISCARD or WRITE_ZEROES, held like an aligned write (sector-writes.js); partial
// edge sectors are kept (trim) or written as zero bytes (write-zeroes). Where the zeroes must be
// allocated (NO_HOLE), or the target cannot write zeroes, zero-filled buffers are written.
import { OP, FLAG, ERRNO } from '../../core-as/js/dmcore.js';
import { NbdError } from '../protocol/errors.js';
import { NBD_ERR } from '../protocol/constants.js';
import { ioError, sectorOp } from './core-requests.js';

const SECTOR = 512;
/** Zero-filled writes (NO_HOLE, targets without write-zeroes) go in pieces of this size. */
const ZERO_WRITE_BYTES = 1 << 20;
/** The most sectors one DISCARD / WRITE_ZEROES goes to the core with (its count is a u32). */
const RANGE_SECTORS_MAX = 2 ** 31;

/** @typedef {import('./device-export.js').DeviceExport} DeviceExport */
/** @typedef {import('./device-export.js').Done} Done */

/**
 * Only whole sectors can be discarded; partial edge sectors keep their data (trim is advisory,
 * and so is a target that cannot discard).
 * @param {DeviceExport} exp @param {Done} done
 */
export function trim(exp, offset, length, fua, done) {
  const first = Math.ceil(offset / SECTOR);
  const last = Math.floor((offset + length) / SECTOR);
  if (last <= first) { done(null); return; }
  rangeOp(exp, OP.DISCARD, fua, first, last, `trim of ${length} bytes at ${offset}`).then(() => done(null), done);
}

/** @param {DeviceExport} exp @param {{fua: boolean, noHole: boolean, fastZero: boolean}} opts */
export async function zeroRange(exp, offset, length, { fua, noHole, fastZero }) {
  const what = `write-zeroes of ${length} bytes at ${offset}`;
  if (fastZero) {
    // Zeroing here means reading the range and writing where it is not zero: never faster than
    // a write, unless the range is known to read as zeroes already, when there is nothing to do.
    if (exp.allocation.knownZero(exp.name, offset, length)) return;
    throw new NbdError(NBD_ERR.ENOTSUP, `${what}: fast zeroing is only possible where the device is known to read as zeroes`);
  }
  const first = Math.ceil(offset / SECTOR);
  const last = Math.floor((offset + length) / SECTOR);
  if (last <= first) { await writeZeroBytes(exp, offset, length, fua); return; }
  // Partial sectors at the edges are ordinary writes of zero bytes.
  if (offset < first * SECTOR) await writeZeroBytes(exp, offset, first * SECTOR - offset, fua);
  if (noHole) await zeroByWriting(exp, first, last, fua, what);
  else await rangeOp(exp, OP.WRITE_ZEROES, fua, first, last, what);
  if (offset + length > last * SECTOR) await writeZeroBytes(exp, last * SECTOR, offset + length - last * SECTOR, fua);
}

/** @param {DeviceExport} exp */
export async function writeZeroBytes(exp, offset, length, fua) {
  const ptr = exp.allocBuffer(length);
  exp.engine.mem().fill(0, ptr, ptr + length);
  await new Promise((resolve, reject) => exp.write(offset, length, ptr, fua, (e) => (e ? reject(e) : resolve(undefined))));
}

/**
 * DISCARD / WRITE_ZEROES on whole sectors, held like an aligned write. The core counts sectors
 * in 32 bits, so a range from a 64-bit request (extended headers) goes in pieces.
 * @param {DeviceExport} exp
 */
export async function rangeOp(exp, op, fua, first, last, what) {
  for (let s = first; s < last; s += RANGE_SECTORS_MAX) await rangeOpOnce(exp, op, fua, s, Math.min(last, s + RANGE_SECTORS_MAX), what);
}

/** @param {DeviceExport} exp */
export async function rangeOpOnce(exp, op, fua, first, last, what) {
  const release = await exp.locks.lock(first, last, false);
  let status = 0, detail = '';
  try {
    status = await new Promise((resolve) => {
      const r = exp.engine.submit(exp.id, op, fua ? FLAG.FUA : 0, first, last - first, 0, resolve);
      if (r !== 0) { detail = exp.core.message(); resolve(r); }
    });
  } finally {
    release();
  }
  // A target without write-zeroes gets zero-filled writes, which take their own locks.
  if (status === ERRNO.EOPNOTSUPP && op === OP.WRITE_ZEROES) { await zeroByWriting(exp, first, last, fua, what); return; }
  if (status === ERRNO.EOPNOTSUPP && op === OP.DISCARD) return;
  if (status !== 0) throw ioError(status, what, detail);
}

/** Writes zero-filled buffers: for NO_HOLE (the zeroes must be allocated) and targets without write-zeroes. @param {DeviceExport} exp */
export async function zeroByWriting(exp, first, last, fua, what) {
  const chunk = ZERO_WRITE_BYTES / SECTOR;
  const ptr = exp.allocBuffer(ZERO_WRITE_BYTES);
  try {
    exp.engine.mem().fill(0, ptr, ptr + ZERO_WRITE_BYTES);
    for (let s = first; s < last; s += chunk) {
      const n = Math.min(chunk, last - s);
      const release = await exp.locks.lock(s, s + n, false);
      try { await sectorOp(exp, OP.WRITE, fua, s, n, ptr, what); } finally { release(); }
    }
  } finally {
    exp.free(ptr);
  }
}
