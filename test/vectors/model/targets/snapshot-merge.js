// @ts-check
// snapshot-merge <origin> <COW device> P <chunk_size> (dm-snap.c merge_target): presents the
// snapshot's view while its exceptions are copied back into the origin. The model merges
// everything at resume (../snapshot/snapshot.js, merge()).
import { Snapshot } from '../snapshot/snapshot.js';
import { snapshotTarget } from './snapshot.js';

export const types = {
  'snapshot-merge'(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    const s = Snapshot.create(args, ctx, true);
    if (!(s instanceof Snapshot)) return s;
    return snapshotTarget(s, ctx.len);
  },
};
