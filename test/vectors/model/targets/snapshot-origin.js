// @ts-check
// snapshot-origin <origin> (dm-snap.c origin_target): the origin as its users see it. Reads
// pass through; a write first has every snapshot of the origin copy out the chunks it would
// overwrite. Linux gives it no discard or write-zeroes bios: those fail with EOPNOTSUPP.
import { originWrite } from '../snapshot/snapshot.js';

export const types = {
  'snapshot-origin'(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    if (args.length !== 1) return ctx.fail('incorrect number of arguments');
    const dev = ctx.device(args[0]);
    if (!dev) return ctx.fail('cannot get target device');
    return {
      areas: [{ dev, start: 0, len: ctx.len }],
      io(op, rel, count, data) {
        const sector = ctx.begin + rel; // no remapping: the origin's own sector numbers
        if (op === 'discard' || op === 'zeroes') return { errno: 'EOPNOTSUPP' };
        if (op === 'write') originWrite(ctx.model, dev, sector, count);
        return dev.io(op, op === 'flush' ? 0 : sector, count, data);
      },
      info: () => '',
      table: () => dev.name,
    };
  },
};
