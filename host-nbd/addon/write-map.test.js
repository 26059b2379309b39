// WriteMap.publish (receiver_binding.cc) takes only extents the receive thread can map safely:
// segments sorted and apart, a striped segment's stripes all there and in order. WriteMap.pieces
// shows where the thread reads and writes: dm-stripe's mapping, cut at chunk boundaries.
import { describe, it, expect, afterAll } from 'vitest';
import { openSync, closeSync } from 'node:fs';
import { loadReceiveThreads } from '../server/receive-threads.js';

const { threads } = loadReceiveThreads();

describe.skipIf(!threads)('WriteMap.publish and pieces', () => {
  const fd = openSync('/dev/null', 'r');
  const map = threads ? new threads.WriteMap() : null;
  const linear = (start, end) => [start, end, fd, 0, 1, 1, 0, 1, 0];
  const stripe = (start, end, i, n = 2) => [start, end, fd, 0, 1, 1, 65536, n, i];
  afterAll(() => closeSync(fd));

  it('takes linear segments and whole striped ones', () => {
    expect(() => map.publish([linear(0, 4096), stripe(4096, 4096 + 4 * 65536, 0), stripe(4096, 4096 + 4 * 65536, 1), linear(1 << 20, 2 << 20)])).not.toThrow();
    map.withdraw();
  });

  it('refuses what the thread could not map', () => {
    expect(() => map.publish([linear(0, 8192), linear(4096, 16384)])).toThrow('segments must be sorted, not empty and not overlapping');
    expect(() => map.publish([stripe(0, 4 * 65536, 0)])).toThrow('a striped segment is missing stripes');
    expect(() => map.publish([stripe(0, 4 * 65536, 0, 3), stripe(0, 4 * 65536, 1, 3), linear(1 << 20, 2 << 20)])).toThrow('a striped segment is missing stripes');
    expect(() => map.publish([stripe(0, 4 * 65536, 1), stripe(0, 4 * 65536, 0)])).toThrow("stripe order");
    expect(() => map.publish([stripe(0, 4 * 65536, 0), stripe(0, 8 * 65536, 1)])).toThrow('stripe order');
    expect(() => map.publish([[0, 4096, fd, 0, 1, 1, 0, 2, 0]])).toThrow('a linear one (chunk 0) has one');
    expect(() => map.publish([[0, 4096, fd, 0, 1, 1]])).toThrow('an extent is [start, end, fd, filePos, tag, writable, chunk, stripes, stripe, guarded?]');
    expect(() => map.publish([[0, 4096, fd, 0, 1, 2, 0, 1, 0]])).toThrow("writable is 1 or 0");
  });

  it('cuts a request into per-chunk pieces on the stripes dm-stripe maps them to; linear in one piece; never across segments', () => {
    const chunk = 65536, stripes = 3, rows = 8;
    const segStart = 4096, segEnd = segStart + stripes * chunk * rows;
    const filePos = [1 << 20, 0, 3 * 512];
    const tag = [7, 8, 9];
    const striped = (writable) => filePos.map((pos, i) => [segStart, segEnd, fd, pos, tag[i], writable[i], chunk, stripes, i]);
    const lin = [segEnd, segEnd + (1 << 20), fd, 5 << 20, 4, 1, 0, 1, 0];
    map.publish([...striped([1, 1, 1]), lin]);
    // An independent model: byte by byte, as stripe_map_sector maps sectors.
    const model = (off, len) => {
      const out = [];
      for (let at = 0; at < len; at += 512) {
        const rel = off + at - segStart, chunkNo = Math.floor(rel / chunk), stripe = chunkNo % stripes;
        const pos = filePos[stripe] + Math.floor(chunkNo / stripes) * chunk + (rel % chunk);
        const last = out[out.length - 1];
        if (last && last[0] === tag[stripe] && last[1] + last[3] === pos && rel % chunk !== 0) last[3] += 512;
        else out.push([tag[stripe], pos, at, 512]);
      }
      return out;
    };
    const cases = [
      [segStart, 4096], // inside chunk 0
      [segStart + chunk - 512, 1024], // across chunks 0 and 1
      [segStart + 3 * chunk, 3 * chunk], // a whole row
      [segStart + 2 * chunk + 4096, 7 * chunk], // several rows from mid-chunk
      [segStart, segEnd - segStart], // the whole segment
    ];
    let seed = 1;
    const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    for (let i = 0; i < 200; i++) {
      const off = segStart + 512 * rand((segEnd - segStart) / 512);
      cases.push([off, 512 * (1 + rand((segEnd - off) / 512))]);
    }
    for (const [off, len] of cases) expect(map.pieces(off, len, true), `${off} ${len}`).toEqual(model(off, len));
    expect(map.pieces(segEnd + 4096, 8192, true)).toEqual([[4, (5 << 20) + 4096, 0, 8192]]);
    expect(map.pieces(segEnd - 4096, 8192, false)).toBe(null); // two segments
    expect(map.pieces(0, 4096, false)).toBe(null); // before the first
    // A read-only stripe: writes only where they touch none of it; reads anywhere.
    map.publish(striped([1, 0, 1]));
    expect(map.pieces(segStart, chunk, true)).not.toBe(null); // stripe 0
    expect(map.pieces(segStart + chunk - 512, 1024, true)).toBe(null); // stripes 0 and 1
    expect(map.pieces(segStart + 2 * chunk, 2 * chunk, true)).not.toBe(null); // stripes 2 and 0
    expect(map.pieces(segStart + 2 * chunk, 3 * chunk, true)).toBe(null); // and 1
    expect(map.pieces(segStart + chunk - 512, 1024, false)).toEqual(model(segStart + chunk - 512, 1024));
    map.withdraw();
    expect(map.pieces(segStart, 4096, false)).toBe(null);
  });
});

describe.skipIf(!threads)('WriteMap guarded extents (snapshot origins)', () => {
  const fd = openSync('/dev/null', 'r');
  const map = threads ? new threads.WriteMap() : null;
  const CHUNK = 4096, DEVICE = 64 * CHUNK + 1024; // the last chunk is short
  const origin = (start, end) => [start, end, fd, start, 3, 1, 0, 1, 0, 1];
  afterAll(() => closeSync(fd));

  it('refuses a guarded extent without marks, a striped one, or a guarded flag other than 1 or 0', () => {
    expect(() => map.publish([origin(0, DEVICE)])).toThrow('a guarded extent needs marks: [chunkBytes, deviceBytes]');
    expect(() => map.publish([origin(0, DEVICE)], [0, DEVICE])).toThrow('marks are [chunkBytes > 0, deviceBytes]');
    expect(() => map.publish([[0, 65536, fd, 0, 1, 1, 65536, 1, 0, 1]], [CHUNK, DEVICE])).toThrow('only a linear extent (chunk 0) can be guarded');
    expect(() => map.publish([[0, 4096, fd, 0, 1, 1, 0, 1, 0, 2]], [CHUNK, DEVICE])).toThrow('guarded is 1 or 0');
  });

  it('writes only over marked chunks, reads anywhere; a new publication clears the marks', () => {
    map.publish([origin(0, 8 * CHUNK), [8 * CHUNK, 16 * CHUNK, fd, 0, 4, 1, 0, 1, 0], origin(16 * CHUNK, DEVICE)], [CHUNK, DEVICE]);
    expect(map.pieces(0, CHUNK, true)).toBe(null);
    expect(map.pieces(0, CHUNK, false)).toEqual([[3, 0, 0, CHUNK]]);
    map.mark(1, 2);
    expect(map.pieces(CHUNK, 2 * CHUNK, true)).toEqual([[3, CHUNK, 0, 2 * CHUNK]]);
    expect(map.pieces(CHUNK + 512, 512, true)).toEqual([[3, CHUNK + 512, 0, 512]]);
    expect(map.pieces(CHUNK, 3 * CHUNK, true)).toBe(null); // chunk 3 is not marked
    expect(map.pieces(0, 2 * CHUNK, true)).toBe(null); // nor chunk 0
    // An unguarded segment in between takes writes without marks.
    expect(map.pieces(8 * CHUNK, CHUNK, true)).toEqual([[4, 0, 0, CHUNK]]);
    // Marks are by device chunk, from byte 0, across segments; past the device they are dropped.
    map.mark(20, 1);
    expect(map.pieces(20 * CHUNK, CHUNK, true)).toEqual([[3, 20 * CHUNK, 0, CHUNK]]);
    map.mark(64, 10);
    expect(map.pieces(64 * CHUNK, 1024, true)).toEqual([[3, 64 * CHUNK, 0, 1024]]);
    map.mark(1000, 1);
    map.publish([origin(0, 8 * CHUNK)], [CHUNK, 8 * CHUNK]);
    expect(map.pieces(CHUNK, CHUNK, true)).toBe(null);
    map.withdraw();
    map.mark(0, 1); // nothing published: nothing to mark
  });

  it('keeps the claims of copies taken back under the tag given, for the same publication and chunks only', () => {
    map.publish([origin(0, DEVICE)], [CHUNK, DEVICE]);
    const lend = (held, chunk = CHUNK) => map.enableCopies(fd, chunk, DEVICE, DEVICE, 0, 16, held);
    expect(lend(5n)).toBe(false); // none kept
    expect(lend(new BigUint64Array([2n]))).toBe(true);
    expect(map.pieces(2 * CHUNK, CHUNK, true)).toEqual([[3, 2 * CHUNK, 0, CHUNK]]); // a held chunk is marked
    map.releaseCopies(7n);
    expect(lend(8n)).toBe(false); // another tag: the snapshot's exceptions changed
    expect(lend(7n)).toBe(true);
    map.releaseCopies(); // no tag: not kept
    expect(lend(7n)).toBe(false);
    expect(lend(new BigUint64Array([]))).toBe(true);
    map.releaseCopies(3n);
    expect(lend(3n, 2 * CHUNK)).toBe(false); // other chunks
    expect(lend(3n)).toBe(true);
    map.releaseCopies(4n);
    map.publish([origin(0, DEVICE)], [CHUNK, DEVICE]); // a new publication: new marks
    expect(lend(4n)).toBe(false);
    expect(() => lend(4)).toThrow('held: BigUint64Array | bigint');
    map.withdraw();
  });
});
