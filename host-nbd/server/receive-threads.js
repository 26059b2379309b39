// @ts-check
// A thread per connection that reads the socket and does plain reads and writes itself (the
// native addon's Receiver; why: host-nbd/addon/src/receiver.h). The event loop gets every other
// byte of the stream as before, parsed by the same code, and a list of requests the thread did
// (to account for them, and to answer the writes it could not answer itself).
//
// Where the thread may read and write is published per device (WriteMap): the ranges a `linear`,
// `striped` or `snapshot-origin` target maps straight onto image files (writes only where export
// and file are writable, and on an origin only over chunks every snapshot has copied), while the
// device is live (withdrawn at suspend).
// Serving works without the addon; everything is read on the event loop then.
import { loadBuiltAddon } from '../addon/built.js';

/**
 * Numbers per request in a receiver's records (receiver_binding.cc PutRecord), and where each is.
 * TAG and FILE_POS say where a request in one piece went (LENGTH bytes); a WRITE the thread did in
 * several pieces (across chunks of a striped segment) has PIECES of them listed, in order, in the
 * records' `pieces` (IO_PIECE numbers each, PIECE says where). IS_READ is 0 for a WRITE, 1 for
 * a READ, 2 for a READ whose data went from the image's mapping (file_view.h). SPLICED is 1 for a
 * WRITE whose payload went from the socket to the file through a pipe (payload_pipe.h).
 */
export const IO_RECORD = 11;
/** ERRNO of a WRITE the thread gave up before doing it, as its connection closed (receiver.cc Cancel). */
export const THREAD_CANCELED = 125; // ECANCELED
export const IO = Object.freeze({
  COOKIE_HI: 0, COOKIE_LO: 1, TAG: 2, FILE_POS: 3, LENGTH: 4, ERRNO: 5, OFFSET: 6, REPLIED: 7, IS_READ: 8, PIECES: 9, SPLICED: 10,
});
/** Numbers per file piece of a WRITE in several (a record array's `pieces`), and where each is. */
export const IO_PIECE = 4;
export const PIECE = Object.freeze({ TAG: 0, FILE_POS: 1, LENGTH: 2, ERRNO: 3 });

/**
 * @typedef {object} NativeReceiver
 * @property {() => void} pause
 * @property {() => void} resume
 * @property {(cookieHi: number, cookieLo: number) => void} writeAnswered the WRITE with that cookie the event loop parsed was answered
 * @property {() => boolean} tryClaimOutput the event loop is about to write to the socket; false while the thread sends a reply (try again soon)
 * @property {() => void} releaseOutput nothing of the event loop's is leaving: the thread may send its replies
 * @property {() => number} midRequestMs how long a request has been arriving in part (0: none)
 * @property {() => Float64Array[]} stop joins the thread; returns writes done but not delivered
 */
/**
 * @typedef {object} NativeWriteMap
 * @property {(extents: number[][], marks?: number[]) => void} publish [start, end, fd, filePos, tag, writable (1 or 0), chunk, stripes, stripe, guarded (1 or 0)] per extent;
 *   marks [chunk bytes, device bytes] for guarded extents, written only over marked chunks (engine/origin-marks.js)
 * @property {(firstChunk: number, count: number) => void} mark chunks a guarded extent may be written over, until the next publish
 * @property {() => void} withdraw
 * @property {(n: number) => void} release
 * @property {() => number} inflight
 * @property {(offset: number, length: number, write: boolean) => number[][] | null} pieces where a thread would read or write now: [tag, filePos, at, length] per piece (tests)
 * @property {(cowFd: number, chunkBytes: number, deviceBytes: number, originBytes: number, first: number, count: number, held: BigUint64Array | bigint, perArea?: number, area?: number, committed?: number, areaBytes?: Uint8Array) => boolean} enableCopies
 *   first writes to the guarded extent's unmarked chunks may copy them into COW chunks [first, first + count) (engine/thread-copies.js)
 *   held: the snapshot's chunks, or the tag releaseCopies kept the claims under (false: not kept so; nothing enabled)
 * @property {() => void} disableCopies no thread starts a copy from now on
 * @property {(count: number) => void} lendCopies count more COW chunks, following the last
 * @property {() => Float64Array} drainCopies [originChunk, cowChunk] pairs copied since the last drain (-1: a chunk whose copy failed)
 * @property {() => number[]} unusedCopies [next, end, count]: lent COW chunks not taken (the first, the one after the last, how many)
 * @property {(tag?: bigint) => void} releaseCopies the copies taken back are settled: the COW descriptor goes, the
 *   claims too unless kept under the tag of the snapshot's exceptions (which they then are exactly)
 * @property {(firstChunk: number, count: number, on: boolean) => void} snapshotReads a read of the snapshot starts over these
 *   origin chunks, or ended (the threads wait for it before they write the origin over a chunk they copied)
 */
/**
 * @typedef {object} ReceiveThreads
 * @property {new (sockFd: number, initial: Buffer, map: NativeWriteMap | null, opts: {maxRequest: number, structured: boolean, stallMs: number},
 *   onEvents: (items: Array<Buffer | Float64Array>, end: [string, boolean] | null) => void) => NativeReceiver} Receiver
 * @property {new () => NativeWriteMap} WriteMap
 */

/** @typedef {{count: () => number}} ThreadWrites writes receive threads completed on one file so far (file_writes.h) */

/** @type {((fd: number) => ThreadWrites) | null | undefined} undefined: not loaded yet */
let fileWrites;

/**
 * The count of writes receive threads completed on the file fd is open on (counted before they
 * reply), or null without the addon. Every descriptor of one file shares one count.
 * @param {number} fd @returns {ThreadWrites | null}
 */
export function threadWritesOf(fd) {
  if (fileWrites === undefined) {
    const { addon } = loadBuiltAddon('counting receive threads\' writes', 'FileWrites');
    fileWrites = addon ? (n) => new addon.FileWrites(n) : null;
  }
  if (!fileWrites) return null;
  try {
    return fileWrites(fd);
  } catch {
    return null; // not a descriptor the addon can fstat: nobody counts (every flush syncs)
  }
}

/** @returns {{threads: ReceiveThreads | null, why: string | null}} */
export function loadReceiveThreads() {
  const { addon, why } = loadBuiltAddon('receive threads', 'Receiver');
  if (!addon) return { threads: null, why };
  return { threads: { Receiver: addon.Receiver, WriteMap: addon.WriteMap }, why: null };
}
