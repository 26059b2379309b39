// @ts-check
// snapshot <origin> <COW device> <P|PO|N> <chunk_size> (dm-snap.c): the origin as it was when
// the snapshot was made, writable. The work is in ../snapshot/snapshot.js.
import { Snapshot } from '../snapshot/snapshot.js';

export const types = {
  snapshot(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    const s = Snapshot.create(args, ctx, false);
    if (!(s instanceof Snapshot)) return s;
    return snapshotTarget(s, ctx.len);
  },
};

/** The target face of a Snapshot (also used by snapshot-merge). @param {Snapshot} s @param {number} len */
export function snapshotTarget(s, len) {
  return s.target = {
    areas: [{ dev: s.origin, start: 0, len }, { dev: s.cow, start: 0, len: s.cow.size() }],
    io: (/** @type {import('../blockdev.js').Op} */ op, /** @type {number} */ sector, /** @type {number} */ count, /** @type {Uint8Array=} */ data) => s.io(op, sector, count, data),
    info: () => s.info(),
    table: () => s.table(),
    preresume: () => s.preresume(),
    resume: () => s.resume(),
    destroy: () => s.destroy(),
  };
}
