// @ts-check
// An export's requests to the core: a failed one as the NbdError a client gets (naming the
// request), and one sector request as a promise, for the export's multi-step operations
// (read-modify-write, zeroing, flush).
import { FLAG, errnoName } from '../../core-as/js/dmcore.js';
import { NbdError, nbdErrnoOf } from '../protocol/errors.js';

/** @param {number} status the core's errno @param {string} what the request @param {string} [detail] */
export function ioError(status, what, detail) {
  return new NbdError(nbdErrnoOf(status), `${what} failed: ${detail || errnoName(status)}`);
}

/**
 * One core request as a promise; rejects with NbdError.
 * @param {import('./device-export.js').DeviceExport} exp
 */
export async function sectorOp(exp, op, fua, sector, count, buf, what) {
  let detail = '';
  const status = await new Promise((resolve) => {
    const r = exp.engine.submit(exp.id, op, fua ? FLAG.FUA : 0, sector, count, buf, resolve);
    if (r !== 0) { detail = exp.core.message(); resolve(r); }
  });
  if (status !== 0) throw ioError(status, what, detail);
}
