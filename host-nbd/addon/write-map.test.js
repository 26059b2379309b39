// WriteMap.publish (receiver_binding.cc) takes only extents the receive thread can map safely:
// segments sorted and apart, a striped segment's stripes all there and in order.
import { describe, it, expect } from 'vitest';
import { openSync, closeSync } from 'node:fs';
import { loadReceiveThreads } from '../server/receive-threads.js';

const { threads } = loadReceiveThreads();

describe.skipIf(!threads)('WriteMap.publish', () => {
  const fd = openSync('/dev/null', 'r');
  const map = threads ? new threads.WriteMap() : null;
  const linear = (start, end) => [start, end, fd, 0, 1, 1, 0, 1, 0];
  const stripe = (start, end, i, n = 2) => [start, end, fd, 0, 1, 1, 65536, n, i];

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
    expect(() => map.publish([[0, 4096, fd, 0, 1, 1]])).toThrow('an extent is [start, end, fd, filePos, tag, writable, chunk, stripes, stripe]');
    expect(() => map.publish([[0, 4096, fd, 0, 1, 2, 0, 1, 0]])).toThrow("writable is 1 or 0");
    closeSync(fd);
  });
});
