// @ts-check
// linear <dev> <offset> (dm-linear.c): sector s of the segment is sector offset+s of dev.
import { parseSector } from './args.js';

export const types = {
  linear(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    if (args.length !== 2) return ctx.fail('needs <dev> <offset>');
    const dev = ctx.device(args[0]);
    if (!dev) return ctx.fail(`no device '${args[0]}'`);
    const offset = parseSector(args[1]);
    if (offset === null) return ctx.fail(`bad offset '${args[1]}'`);
    return {
      areas: [{ dev, start: offset, len: ctx.len }],
      io: (op, sector, count, data) => dev.io(op, op === 'flush' ? 0 : offset + sector, count, data),
      info: () => '',
      table: () => `${dev.name} ${offset}`,
    };
  },
};
