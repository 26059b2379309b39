// @ts-check
// error (dm-target.c io_err): reads, writes and discards fail with EIO. It sets no flush or
// write-zeroes bios, so a flush succeeds without reaching it and WRITE_ZEROES is EOPNOTSUPP.
// Arguments are ignored, except that two (`<dev> <sector>`, as linear) name a device that must exist.
import { parseSector } from './args.js';

export const types = {
  error(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    /** @type {import('../table.js').Target['areas']} */
    let areas = [];
    if (args.length === 2) {
      const start = parseSector(args[1]);
      if (start === null) return ctx.fail(`bad device sector '${args[1]}'`);
      const dev = ctx.device(args[0]);
      if (!dev) return ctx.fail(`no device '${args[0]}'`);
      areas = [{ dev, start, len: ctx.len }];
    }
    return {
      areas,
      io: (op) => ({ errno: op === 'flush' ? null : op === 'zeroes' ? 'EOPNOTSUPP' : 'EIO' }),
      info: () => '',
      table: () => '',
    };
  },
};
