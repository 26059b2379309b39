// Which targets take DISCARD and WRITE_ZEROES is decided, as in Linux, by the number of such
// bios each target asks for; a request reaching a target that asks for none fails EOPNOTSUPP.
// zero drops discards (dm-zero.c), error fails them with EIO (io_err_ctr); neither, nor
// snapshot-origin (origin_ctr sets only a flush bio), takes WRITE_ZEROES.
import { describe, it, expect } from 'vitest';
import { newHarness } from './harness.js';
import { OP, ERRNO } from '../../core-as/js/dmcore.js';

const cases = [
  ['0 16 zero', OP.DISCARD, 0],
  ['0 16 zero', OP.WRITE_ZEROES, ERRNO.EOPNOTSUPP],
  ['0 16 error', OP.DISCARD, ERRNO.EIO],
  ['0 16 error', OP.WRITE_ZEROES, ERRNO.EOPNOTSUPP],
  ['0 16 snapshot-origin d.img', OP.DISCARD, ERRNO.EOPNOTSUPP],
  ['0 16 snapshot-origin d.img', OP.WRITE_ZEROES, ERRNO.EOPNOTSUPP],
  ['0 16 linear d.img 0', OP.WRITE_ZEROES, 0],
];

describe('DISCARD and WRITE_ZEROES support per target', () => {
  for (const [table, op, want] of cases) {
    it(`${table}: ${op === OP.DISCARD ? 'DISCARD' : 'WRITE_ZEROES'} -> ${want}`, async () => {
      const h = await newHarness();
      h.disk('d.img', 16);
      const d = h.device('t', table);
      const tag = h.submit(d, op, 0, 8);
      h.drain();
      expect(h.done.get(tag)).toBe(want);
    });
  }
});
