// @ts-check
// zero (dm-zero.c): reads return zeroes, writes and discards are dropped. Linux gives it no
// WRITE_ZEROES support (num_write_zeroes_bios is 0), so a WRITE_ZEROES fails with EOPNOTSUPP.
export const types = {
  zero(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    if (args.length !== 0) return ctx.fail('no arguments required');
    return {
      io: (op, sector, count) => {
        if (op === 'read') return { errno: null, data: new Uint8Array(count * 512) };
        if (op === 'zeroes') return { errno: 'EOPNOTSUPP' };
        return { errno: null };
      },
      info: () => '',
      table: () => '',
    };
  },
};
