// @ts-check
// Zeroes in a file backing: making a range read as zeroes (discard, write-zeroes; FileBacking.zero),
// and knowing which ranges do (block status, fast zero; FileBacking.zeroRuns).
//
// Zeroing punches a hole where the native addon can (file-holes.js): the range then reads as
// zeroes, whatever its size, and frees its blocks. Without it, or on a file system that cannot
// punch, it reads the range and writes zeroes only where the file is not zero already, so zeroing
// a sparse image allocates nothing (Node has no fallocate).
import fs from 'node:fs';
import { readOnlyError } from './image-open.js';

const ZERO_CHUNK = 1 << 20;
const ZEROES = Buffer.alloc(ZERO_CHUNK);

/** @typedef {import('./file-backing.js').FileBacking} FileBacking */
/** @typedef {import('./file-backing.js').Done} Done */

/**
 * Makes [position, position + length) of the file read as zeroes, writing only the parts that
 * are not zero already (a discard or write-zeroes over a sparse image then allocates nothing).
 * @param {FileBacking} file @param {number} position @param {number} length @param {Done} done
 */
export function zeroRange(file, position, length, done) {
  if (file.readOnly) { done(readOnlyError(file.path)); return; }
  if (file.holes && file.canPunch && length > 0) {
    file.holes.punch(file.fd, position, length, (err) => {
      if (err && (err.code === 'EOPNOTSUPP' || err.code === 'ENOTSUP')) { file.canPunch = false; file.zero(position, length, done); return; }
      file.mayHaveHoles = true;
      file.ownWrites++; // a flush must make the deallocation durable too
      done(err);
    });
    return;
  }
  const end = position + length;
  const scratch = Buffer.allocUnsafe(Math.min(ZERO_CHUNK, length));
  const step = (at) => {
    if (at >= end) { done(null); return; }
    const n = Math.min(ZERO_CHUNK, end - at);
    fs.read(file.fd, scratch, 0, n, at, (err, got) => {
      if (err) { done(err); return; }
      // Bytes past the end of the file read as zeroes already.
      if (got === 0 || scratch.compare(ZEROES, 0, got, 0, got) === 0) { step(at + n); return; }
      file.written.mark(at, n);
      fs.write(file.fd, ZEROES, 0, n, at, (werr) => {
        file.ownWrites++;
        if (werr) done(werr);
        else step(at + n);
      });
    });
  };
  step(position);
}

/**
 * [position, position + length) of the file cut into runs known to read as zeroes (holes) and
 * the rest: from the file system where the addon can ask it (a hole past the end of the file is
 * not known: it counts as data), else from WrittenMap for a file that was sparse when opened;
 * null when nothing is known.
 * @param {FileBacking} file @param {number} position @param {number} length
 * @returns {{length: number, hole: boolean}[] | null}
 */
export function zeroRunsOf(file, position, length) {
  if (file.holes && !file.closed) {
    const inFile = Math.max(0, Math.min(length, file.bytes - position));
    /** @type {{length: number, hole: boolean}[]} */
    let runs = [];
    if (inFile > 0) runs = file.mayHaveHoles ? file.holes.runs(file.fd, position, inFile) : [{ length: inFile, hole: false }];
    if (inFile < length) runs.push({ length: length - inFile, hole: false });
    return runs;
  }
  if (!file.sparseAtOpen) return null;
  return file.written.runs(position, length).map((r) => ({ length: r.length, hole: !r.written }));
}
