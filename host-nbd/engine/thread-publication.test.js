// Where receive threads may read and write a device (writeExtents), and accounting for what they
// did (threadIoDone, withdrawWrites), against a stand-in export: no core, no addon.
import { describe, it, expect } from 'vitest';
import { writeExtents, threadIoDone, withdrawWrites, threadsIdle } from './thread-publication.js';
import { IO, IO_RECORD, IO_PIECE, PIECE } from '../server/receive-threads.js';

/** Files 0 (/img/a), 1 (/img/ro, read-only) and 2 (/img/b); `lower` is a mapped device. */
function fakeExport({ readOnly = false, inflight = 0 } = {}) {
  const file = (fd, ro) => {
    const f = { fd, readOnly: ro, closed: false, threadWritable: false, marks: /** @type {number[][]} */ ([]), heard: 0 };
    return Object.assign(f, { written: { mark: (pos, length) => f.marks.push([pos, length]) }, threadWriteHeard: () => { f.heard++; } });
  };
  const files = [file(10, false), file(11, true), file(12, false)];
  const ids = new Map([['/img/a', 0], ['/img/ro', 1], ['/img/b', 2]]);
  const logged = /** @type {string[]} */ ([]);
  const map = { inflight: () => inflight, release(n) { inflight -= n; }, withdraw() {} };
  return {
    readOnly, files, logged, name: 'd', published: true, writeMap: map, writeWaiters: [], writtenByThreads: 0, readByThreads: 0, readMapped: 0, writtenSpliced: 0,
    engine: { files, backingIdOf: (dev) => ids.get(dev), logIoError: (f, e) => logged.push(`${f.fd}: ${e.message} (${e.code})`) },
    allocation: { isDevice: (dev) => dev === 'lower' },
  };
}

describe('writeExtents', () => {
  it('maps linear and snapshot-origin segments onto files, writable where export and file are', () => {
    const exp = fakeExport();
    const segs = [
      { start: 0, length: 8, target: 'linear', args: ['/img/a', '100'] },
      { start: 8, length: 8, target: 'linear', args: ['/img/ro', '0'] },
      { start: 16, length: 8, target: 'snapshot-origin', args: ['/img/b'] },
    ];
    expect(writeExtents(exp, segs, true)).toEqual([
      [0, 4096, 10, 51200, 0, 1, 0, 1, 0, 0],
      [4096, 8192, 11, 0, 1, 0, 0, 1, 0, 0],
      [8192, 12288, 12, 8192, 2, 1, 0, 1, 0, 1], // the origin's own sectors, guarded
    ]);
    expect(exp.files.map((f) => f.threadWritable)).toEqual([true, false, true]);
    expect(writeExtents(fakeExport({ readOnly: true }), segs, false).map((e) => [e[5], e[9]])).toEqual([[0, 0], [0, 0], [0, 0]]);
  });

  it('maps a striped segment per stripe, only when every stripe is an open image file', () => {
    const striped = (second) => [{ start: 0, length: 32, target: 'striped', args: ['2', '8', '/img/a', '0', second, '16'] }];
    expect(writeExtents(fakeExport(), striped('/img/b'), false)).toEqual([
      [0, 16384, 10, 0, 0, 1, 4096, 2, 0, 0],
      [0, 16384, 12, 8192, 2, 1, 4096, 2, 1, 0],
    ]);
    expect(writeExtents(fakeExport(), striped('lower'), false)).toEqual([]);
    const closed = fakeExport();
    closed.files[2].closed = true;
    expect(writeExtents(closed, striped('/img/b'), false)).toEqual([]);
    expect(writeExtents(fakeExport(), [{ start: 0, length: 8, target: 'zero', args: [] }], false)).toEqual([]);
  });
});

describe('threadIoDone', () => {
  it('counts reads and writes, marks each file piece written, logs failures, and wakes a withdrawal', async () => {
    const exp = fakeExport({ inflight: 3 });
    const records = Object.assign(new Float64Array(3 * IO_RECORD), { pieces: new Float64Array(2 * IO_PIECE) });
    records[IO.IS_READ] = 1;
    Object.assign(records, { [IO_RECORD + IO.TAG]: 0, [IO_RECORD + IO.FILE_POS]: 4096, [IO_RECORD + IO.LENGTH]: 512, [IO_RECORD + IO.ERRNO]: 5 });
    records[2 * IO_RECORD + IO.PIECES] = 2;
    Object.assign(records.pieces, { [PIECE.TAG]: 0, [PIECE.FILE_POS]: 0, [PIECE.LENGTH]: 4096 });
    Object.assign(records.pieces, { [IO_PIECE + PIECE.TAG]: 2, [IO_PIECE + PIECE.FILE_POS]: 8192, [IO_PIECE + PIECE.LENGTH]: 4096 });
    const withdrawn = withdrawWrites(/** @type {any} */ (exp));
    expect(exp.published).toBe(false);
    expect(threadsIdle(/** @type {any} */ (exp))).toBe(false);
    let woke = false;
    withdrawn.then(() => { woke = true; });
    threadIoDone(/** @type {any} */ (exp), records);
    await withdrawn;
    expect(woke).toBe(true);
    expect([exp.readByThreads, exp.writtenByThreads]).toEqual([1, 2]);
    expect(exp.files[0].marks).toEqual([[4096, 512], [0, 4096]]);
    expect(exp.files[2].marks).toEqual([[8192, 4096]]);
    expect(exp.files.map((f) => f.heard)).toEqual([2, 0, 1]);
    expect(exp.logged).toEqual(['10: write of 512 bytes at 4096 (EIO)']);
    expect(threadsIdle(/** @type {any} */ (exp))).toBe(true);
  });
});
