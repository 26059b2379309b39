// @ts-check
// ebs <dev> <offset> <emulated sectors> [<underlying sectors>] (dm-ebs-target.c): seen from
// above it is linear onto dev at offset; how it gets there (whole-block read-modify-write) is
// invisible, except that a DISCARD only discards the underlying blocks it covers whole and
// WRITE_ZEROES is not taken. The underlying block defaults to 1 sector (dmkit's devices).
// The device must hold the segment rounded up to whole blocks (the last block is rewritten whole).
import { parseSector } from './args.js';

const isPowerOfTwo = (/** @type {number} */ n) => n > 0 && (n & (n - 1)) === 0;

export const types = {
  ebs(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    if (args.length < 3 || args.length > 4) return ctx.fail('needs <dev> <offset> <emulated sectors> [<underlying sectors>]');
    const offset = parseSector(args[1]);
    if (offset === null) return ctx.fail(`bad offset '${args[1]}'`);
    if (offset >= ctx.len) return ctx.fail('offset not below the target length (dm-ebs rule)');
    const emulated = parseSector(args[2]);
    if (emulated === null || !isPowerOfTwo(emulated) || emulated > 8) return ctx.fail(`bad emulated block size '${args[2]}'`);
    let block = 1;
    if (args.length === 4) {
      const u = parseSector(args[3]);
      if (u === null || !isPowerOfTwo(u) || u > 32768) return ctx.fail(`bad underlying block size '${args[3]}'`);
      block = u;
    }
    const dev = ctx.device(args[0]);
    if (!dev) return ctx.fail(`no device '${args[0]}'`);
    if (offset % block !== 0) return ctx.fail('offset not a multiple of the underlying block size');
    const roundedLen = Math.ceil(ctx.len / block) * block;
    return {
      areas: [{ dev, start: offset, len: roundedLen }],
      io(op, sector, count, data) {
        if (op === 'flush') return dev.io('flush', 0, 0);
        if (op === 'zeroes') return { errno: 'EOPNOTSUPP' };
        if (op === 'discard') {
          const from = Math.ceil((offset + sector) / block) * block;
          const to = Math.floor((offset + sector + count) / block) * block;
          return from < to ? dev.io('discard', from, to - from) : { errno: null };
        }
        return dev.io(op, offset + sector, count, data);
      },
      info: () => '',
      table: () => `${dev.name} ${offset} ${emulated}${args.length === 4 ? ` ${block}` : ''}`,
    };
  },
};
