// @ts-check
// flakey <dev> <offset> <up> <down> [<#features> <feature>...] (dm-flakey.c, Linux 6.1 plus
// upstream's error_reads): linear onto dev at offset while up. Up for <up> seconds, then down
// for <down> seconds, counted from table creation on the vector's clock. While down:
//   no features: every request fails with EIO;
//   error_reads: reads fail; drop_writes: writes succeed and change nothing;
//   error_writes: writes fail;
//   corrupt_bio_byte N r|w V F: byte N (from 1) of each read's result / write's data becomes V
//     (when the request is at least N bytes long; the model only knows flags 0 and REQ_OP bits).
// Flushes and discards count as writes. WRITE_ZEROES is not taken.
import { parseSector } from './args.js';

const REQ_OP_WRITE = 1, REQ_OP_DISCARD = 3, REQ_PREFLUSH = 1 << 18;

export const types = {
  flakey(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    if (args.length < 4) return ctx.fail('needs <dev> <offset> <up> <down>');
    const offset = parseSector(args[1]);
    if (offset === null) return ctx.fail(`bad offset '${args[1]}'`);
    const up = parseSector(args[2]), down = parseSector(args[3]);
    if (up === null || up > 0xffffffff) return ctx.fail('bad up interval');
    if (down === null || down > 0xffffffff) return ctx.fail('bad down interval');
    if (up + down === 0 || up + down > 0xffffffff) return ctx.fail('bad total interval');
    const f = { allFail: args.length === 4, errorReads: false, dropWrites: false, errorWrites: false, corrupt: /** @type {null | {nth: number, write: boolean, value: number, flags: number}} */ (null) };
    if (args.length > 4) {
      const n = parseSector(args[4]);
      if (n === null || n > 6 || 5 + n !== args.length) return ctx.fail('bad feature count');
      if (n === 0) f.allFail = true;
      for (let i = 5; i < args.length;) {
        const w = args[i++].toLowerCase();
        if (w === 'error_reads' && !f.errorReads) f.errorReads = true;
        else if (w === 'drop_writes' && !f.dropWrites && !f.errorWrites) f.dropWrites = true;
        else if (w === 'error_writes' && !f.errorWrites && !f.dropWrites) f.errorWrites = true;
        else if (w === 'corrupt_bio_byte' && !f.corrupt && i + 4 <= args.length) {
          const [nth, dir, value, flags] = [parseSector(args[i]), args[i + 1].toLowerCase(), parseSector(args[i + 2]), parseSector(args[i + 3])];
          if (nth === null || nth < 1 || nth > 0xffffffff || (dir !== 'r' && dir !== 'w') || value === null || value > 255 ||
              flags === null || flags > 0xffffffff) return ctx.fail('bad corrupt_bio_byte');
          f.corrupt = { nth, write: dir === 'w', value, flags };
          i += 4;
        } else return ctx.fail(`bad feature '${w}'`);
      }
      if (f.corrupt && f.corrupt.write && (f.dropWrites || f.errorWrites)) return ctx.fail('corrupt w with a write feature');
      if (f.corrupt && !f.corrupt.write && f.errorReads) return ctx.fail('corrupt r with error_reads');
    }
    const dev = ctx.device(args[0]);
    if (!dev) return ctx.fail(`no device '${args[0]}'`);
    const created = ctx.now();
    const isDown = () => Math.floor((ctx.now() - created) / 1000) % (up + down) >= up;
    /** The kernel's bi_opf of a request, as far as the model knows it (no FUA). */
    const opf = (/** @type {string} */ op) => (op === 'read' ? 0 : op === 'flush' ? REQ_OP_WRITE | REQ_PREFLUSH : op === 'discard' ? REQ_OP_DISCARD : REQ_OP_WRITE);
    const corrupts = (/** @type {string} */ op, /** @type {number} */ count) => {
      const c = /** @type {{nth: number, flags: number}} */ (f.corrupt);
      if (c.flags & ~0xff) throw new Error('model: flakey corrupt_bio_byte flags beyond the REQ_OP bits are not modelled');
      return (opf(op) & c.flags) === c.flags && c.nth <= count * 512;
    };
    const pass = (/** @type {import('../blockdev.js').Op} */ op, /** @type {number} */ sector, /** @type {number} */ count, /** @type {Uint8Array} */ [data]) =>
      dev.io(op, op === 'flush' ? 0 : offset + sector, count, data);
    return {
      areas: [{ dev, start: offset, len: ctx.len }],
      io(op, sector, count, data) {
        if (op === 'zeroes') return { errno: 'EOPNOTSUPP' };
        if (!isDown()) return pass(op, sector, count, [data]);
        if (op === 'read') {
          if (f.allFail || f.errorReads) return { errno: 'EIO' };
          const r = pass(op, sector, count, [data]);
          if (!r.errno && f.corrupt && !f.corrupt.write && corrupts(op, count)) {
            const out = /** @type {Uint8Array} */ (r.data).slice();
            out[f.corrupt.nth - 1] = f.corrupt.value;
            return { errno: null, data: out };
          }
          return r;
        }
        if (f.dropWrites) return { errno: null };
        if (f.errorWrites || f.allFail) return { errno: 'EIO' };
        if (op === 'write' && f.corrupt && f.corrupt.write && corrupts(op, count)) {
          const bad = /** @type {Uint8Array} */ (data).slice();
          bad[f.corrupt.nth - 1] = f.corrupt.value;
          return pass(op, sector, count, [bad]);
        }
        return pass(op, sector, count, [data]);
      },
      info: () => '',
      table() {
        const words = [];
        if (f.errorReads) words.push('error_reads');
        if (f.dropWrites) words.push('drop_writes');
        if (f.errorWrites) words.push('error_writes');
        if (f.corrupt) words.push('corrupt_bio_byte', f.corrupt.nth, f.corrupt.write ? 'w' : 'r', f.corrupt.value, f.corrupt.flags);
        return [dev.name, offset, up, down, words.length, ...words].join(' ');
      },
    };
  },
};
