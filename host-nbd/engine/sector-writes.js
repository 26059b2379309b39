// @ts-check
// A WRITE of any byte range as writes of whole sectors to the core (DeviceExport.write).
//
// Aligned writes go straight through, their payload already in core memory. Unaligned writes
// are read-modify-written: the partial edge sectors are read, patched and written back with the
// rest, under an exclusive range lock; aligned writes hold their range shared, so they only ever
// wait for a read-modify-write they overlap (the scheme of dm-ebs and nbdkit's blocksize
// filter; range-lock.js).
import { OP, FLAG } from '../../core-as/js/dmcore.js';
import { ioError, sectorOp } from './core-requests.js';

const SECTOR = 512;

/** @typedef {import('./device-export.js').DeviceExport} DeviceExport */
/** @typedef {import('./device-export.js').Done} Done */

/**
 * Writes `length` bytes from core buffer `ptr` (from allocBuffer; this frees it) at `offset`.
 * @param {DeviceExport} exp @param {Done} done
 */
export function write(exp, offset, length, ptr, fua, done) {
  const finish = (/** @type {import('../protocol/errors.js').NbdError | null} */ e) => { exp.free(ptr); done(e); };
  if (length === 0) { finish(null); return; }
  if (offset % SECTOR === 0 && length % SECTOR === 0) writeAligned(exp, offset, length, ptr, fua, finish);
  else readModifyWrite(exp, offset, length, ptr, fua).then(() => finish(null), finish);
}

/** Whole sectors, straight from the payload buffer, waiting only for overlapping RMWs. @param {DeviceExport} exp */
export function writeAligned(exp, offset, length, ptr, fua, done) {
  const first = offset / SECTOR, count = length / SECTOR;
  exp.locks.acquire(first, first + count, false, (release) => {
    const what = () => `write of ${length} bytes at ${offset}`;  // built only on failure
    const r = exp.engine.submit(exp.id, OP.WRITE, fua ? FLAG.FUA : 0, first, count, ptr, (status) => {
      release();
      if (status === 0) exp.originMarks?.wrote(first, count);
      done(status === 0 ? null : ioError(status, what()));
    });
    if (r !== 0) { release(); done(ioError(r, what(), exp.core.message())); }
  });
}

/** @param {DeviceExport} exp */
export async function readModifyWrite(exp, offset, length, ptr, fua) {
  const first = Math.floor(offset / SECTOR);
  const last = Math.ceil((offset + length) / SECTOR);
  const count = last - first;
  const what = `write of ${length} bytes at ${offset}`;
  // The buffer first: a refusal (ENOMEM) must not leave the range locked for every later write.
  const buf = exp.allocBuffer(count * SECTOR);
  let release = () => {};
  try {
    release = await exp.locks.lock(first, last, true);
    // Only partial edge sectors need their old contents.
    const headPartial = offset % SECTOR !== 0;
    const tailPartial = (offset + length) % SECTOR !== 0;
    if (headPartial) await sectorOp(exp, OP.READ, false, first, 1, buf, what);
    if (tailPartial && (count > 1 || !headPartial)) await sectorOp(exp, OP.READ, false, last - 1, 1, buf + (count - 1) * SECTOR, what);
    const mem = exp.engine.mem();
    mem.copy(mem, buf + (offset - first * SECTOR), ptr, ptr + length);
    await sectorOp(exp, OP.WRITE, fua, first, count, buf, what);
  } finally {
    exp.free(buf);
    release();
  }
}
