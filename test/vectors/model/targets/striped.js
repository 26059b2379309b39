// @ts-check
// striped <#stripes> <chunk_size> (<dev> <offset>)... (dm-stripe.c): the segment is cut into
// chunks dealt round-robin to the stripes. Sector s is in chunk c = s / chunk_size, on stripe
// c % #stripes, at offset + (c / #stripes) * chunk_size + s % chunk_size of that stripe.
import { parseSector } from './args.js';

export const types = {
  striped(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    if (args.length < 2) return ctx.fail('needs <#stripes> <chunk_size> and the stripes');
    const stripes = parseSector(args[0]);
    if (stripes === null || stripes === 0 || stripes > 0xffffffff) return ctx.fail(`bad number of stripes '${args[0]}'`);
    if (args.length !== 2 + 2 * stripes) return ctx.fail('not enough destinations for the number of stripes');
    const chunk = parseSector(args[1]);
    if (chunk === null || chunk === 0 || chunk > 0xffffffff) return ctx.fail(`bad chunk size '${args[1]}'`);
    if (ctx.len % stripes !== 0) return ctx.fail('target length not divisible by the number of stripes');
    const width = ctx.len / stripes;
    if (width % chunk !== 0) return ctx.fail('target length not divisible by the chunk size');
    const legs = [];
    for (let i = 0; i < stripes; i++) {
      const dev = ctx.device(args[2 + 2 * i]);
      if (!dev) return ctx.fail(`no device '${args[2 + 2 * i]}'`);
      const offset = parseSector(args[3 + 2 * i]);
      if (offset === null) return ctx.fail(`bad offset '${args[3 + 2 * i]}'`);
      legs.push({ dev, offset, failed: false });
    }
    /** Where sector s of the segment lives. */
    const place = (/** @type {number} */ s) => {
      const c = Math.floor(s / chunk);
      const leg = legs[c % stripes];
      return { leg, sector: leg.offset + Math.floor(c / stripes) * chunk + (s % chunk) };
    };
    return {
      areas: legs.map((l) => ({ dev: l.dev, start: l.offset, len: width })),
      io(op, sector, count, data) {
        if (op === 'flush') {
          let errno = null;
          for (const l of legs) errno = errno ?? l.dev.io('flush', 0, 0).errno;
          return { errno };
        }
        // one sector at a time: slow, and plainly the mapping above
        const out = op === 'read' ? new Uint8Array(count * 512) : undefined;
        let errno = null;
        for (let i = 0; i < count; i++) {
          const { leg, sector: at } = place(sector + i);
          const piece = op === 'write' ? /** @type {Uint8Array} */ (data).subarray(i * 512, (i + 1) * 512) : undefined;
          const r = leg.dev.io(op, at, 1, piece);
          // stripe_end_io: an I/O error marks every stripe on that device 'D' in the status
          if (r.errno && r.errno !== 'EOPNOTSUPP') for (const l of legs) if (l.dev === leg.dev) l.failed = true;
          errno = errno ?? r.errno;
          if (out && r.data) out.set(r.data, i * 512);
        }
        return errno ? { errno } : { errno: null, data: out };
      },
      info: () => `${stripes} ${legs.map((l) => l.dev.name).join(' ')} 1 ${legs.map((l) => (l.failed ? 'D' : 'A')).join('')}`,
      table: () => `${stripes} ${chunk}${legs.map((l) => ` ${l.dev.name} ${l.offset}`).join('')}`,
    };
  },
};
