// @ts-check
// The small pure pieces of the page and worker: sizes people type, the hex view, where a table's
// segments land (the picture), and which table is a snapshot (the chunk map).
import { describe, it, expect } from 'vitest';
import { parseSize, formatSize } from '../page/sizes.js';
import { hexDump, collapseRepeats } from '../page/hex-view.js';
import { segmentRanges } from '../page/table-bar.js';
import { cowUsage } from '../page/chunk-map.js';
import { snapshotSegment } from '../worker/chunk-tracker.js';
import { diskNameError, diskSizeError } from '../worker/opfs-disks.js';

describe('sizes', () => {
  it('reads bytes, K/M/G and sectors, and refuses the rest', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('64K')).toBe(65536);
    expect(parseSize('16M')).toBe(16 << 20);
    expect(parseSize('1GiB')).toBe(1 << 30);
    expect(parseSize('2048s')).toBe(1 << 20);
    expect(() => parseSize('lots')).toThrow("'lots' is not a size");
    expect(() => parseSize('0')).toThrow('not a usable size');
    expect(formatSize(1536)).toBe('1.5 KiB');
    expect(formatSize(16 << 20)).toBe('16 MiB');
  });

  it('backing devices need a sector multiple and a plain name', () => {
    expect(diskSizeError(1000)).toBe('size 1000 is not a multiple of 512 bytes (one sector)');
    expect(diskSizeError(4096)).toBe('');
    expect(diskNameError('a/b')).toMatch(/must be 1-64 letters/);
    expect(diskNameError('cow.img')).toBe('');
  });
});

describe('hex view', () => {
  it('prints offsets, hex and ASCII, and collapses repeated rows', () => {
    const bytes = new Uint8Array(48).fill(0x41);
    bytes[0] = 0;
    const dump = hexDump(bytes, 1, 16);
    expect(dump.split('\n')[0]).toBe('00000200  00 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41  |.AAAAAAAAAAAAAAA|');
    expect(collapseRepeats(dump).split('\n')).toEqual([
      '00000200  00 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41  |.AAAAAAAAAAAAAAA|',
      '00000210  41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|',
      '*',
    ]);
  });
});

describe('table picture', () => {
  const sizes = { a: 1000, b: 1000, cow: 64 };
  const sizeOf = (n) => sizes[n];
  it('places linear, striped and snapshot segments on their devices', () => {
    expect(segmentRanges(['0', '100', 'linear', 'a', '50'], sizeOf)).toEqual([{ dev: 'a', start: 50, len: 100 }]);
    expect(segmentRanges(['0', '256', 'striped', '2', '8', 'a', '0', 'b', '16'], sizeOf))
      .toEqual([{ dev: 'a', start: 0, len: 128 }, { dev: 'b', start: 16, len: 128 }]);
    expect(segmentRanges(['0', '1000', 'snapshot', 'a', 'cow', 'P', '8'], sizeOf))
      .toEqual([{ dev: 'a', start: 0, len: 1000 }, { dev: 'cow', start: 0, len: 64, role: 'COW' }]);
    expect(segmentRanges(['0', '10', 'zero'], sizeOf)).toEqual([]);
  });
});

describe('snapshot recognition', () => {
  it('finds the snapshot segment at sector 0 and the COW usage in its status', () => {
    expect(snapshotSegment('0 8192 snapshot base cow P 8\n')).toEqual({ length: 8192, target: 'snapshot', origin: 'base', cow: 'cow', persistent: true, chunkSize: 8 });
    expect(snapshotSegment('0 8192 snapshot base cow N 16')?.persistent).toBe(false);
    expect(snapshotSegment('0 8192 snapshot-origin base')).toBeNull();
    expect(cowUsage('0 8192 snapshot 40/4096 16\n')).toEqual({ allocated: 40, total: 4096, metadata: 16 });
    expect(cowUsage('0 8192 snapshot Invalid')).toBeNull();
  });
});
