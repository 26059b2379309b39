// @ts-check
// delay <dev> <offset> <delay> [<wdev> <woffset> <wdelay> [<fdev> <foffset> <fdelay>]] (dm-delay.c):
// linear onto the class's device at its offset, <delay> milliseconds late. Reads use the first
// class; writes and discards the second (else the first); flushes the third (else the write
// class). A request reaches its device when the vector's clock has moved on by the delay, so
// the model moves the clock there before passing it on (the statement finishes then, which is
// when a real runner goes on to the next one). WRITE_ZEROES is not taken.
import { parseSector } from './args.js';

export const types = {
  delay(/** @type {string[]} */ args, /** @type {import('../table.js').TargetContext} */ ctx) {
    if (args.length !== 3 && args.length !== 6 && args.length !== 9) return ctx.fail('needs 3, 6 or 9 arguments');
    /** @type {Array<{dev: import('../blockdev.js').BlockDev, offset: number, ms: number}>} */
    const classes = [];
    for (let i = 0; i < args.length; i += 3) {
      const offset = parseSector(args[i + 1]);
      if (offset === null) return ctx.fail(`bad offset '${args[i + 1]}'`);
      const ms = parseSector(args[i + 2]);
      if (ms === null || ms > 0xffffffff) return ctx.fail(`bad delay '${args[i + 2]}'`);
      const dev = ctx.device(args[i]);
      if (!dev) return ctx.fail(`no device '${args[i]}'`);
      classes.push({ dev, offset, ms });
    }
    const read = classes[0], write = classes[1] ?? read, flush = classes[2] ?? write;
    return {
      areas: classes.map((c) => ({ dev: c.dev, start: c.offset, len: ctx.len })),
      io(op, sector, count, data) {
        if (op === 'zeroes') return { errno: 'EOPNOTSUPP' };
        const c = op === 'read' ? read : op === 'flush' ? flush : write;
        ctx.model.clock += c.ms; // the request reaches its device this much later
        return c.dev.io(op, op === 'flush' ? 0 : c.offset + sector, count, data);
      },
      // Nothing is ever held between statements in the model: every request has gone on.
      info: () => '0 0 0',
      table: () => classes.map((c) => `${c.dev.name} ${c.offset} ${c.ms}`).join(' '),
    };
  },
};
