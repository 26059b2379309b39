// @ts-check
// A vector's I/O statement on a real block device, opened for direct I/O: what the runners that
// drive a kernel's device (test/vectors/runners/_kernel-dm.js, nbd-vectors.js) share.
import { errnoOf } from './direct-io.js';

/**
 * Runs one I/O request of test/vectors/lib/drive.js on the device `opening` resolves to.
 * Returns `{ errno: null }` (with `data` for a read), or the errno it failed with, opening included.
 * @param {Promise<import('./direct-io.js').DirectDevice>} opening @param {any} req
 */
export async function directVectorIo(opening, req) {
  try {
    const d = await opening;
    switch (req.op) {
      case 'read': return { errno: null, data: await d.read(req.sector, req.count) };
      case 'write': await d.write(req.sector, /** @type {Uint8Array} */ (req.data), req.fua); break;
      case 'flush': await d.flush(); break;
      case 'discard': await d.discard(req.sector, req.count); break;
      // WRITE_ZEROES has no FUA from user space: a flush after it makes the zeroes as durable.
      case 'zeroes': await d.zeroes(req.sector, req.count); if (req.fua) await d.flush(); break;
    }
    return { errno: null };
  } catch (err) {
    return { errno: errnoOf(err) };
  }
}
