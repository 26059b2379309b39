// @ts-check
// Vectored transfers of a file backing: a run of parts adjacent in the file (each part's position
// follows the one before) moves in one preadv or pwritev, in the thread pool (the transfer plug's
// merged jobs: FileBacking.readRun, writeRun) or on the event loop (a batch's small adjacent
// commands, Engine.executeRun: FileBacking.readRunNow, writeRunNow). Each part's done is called
// once its bytes moved; a short transfer (end of file, a signal) finishes the rest part by part,
// as FileBacking.read and write do.
import fs from 'node:fs';
import { readOnlyError } from './image-open.js';

/** @typedef {import('./file-backing.js').FileBacking} FileBacking */
/** @typedef {import('./file-backing.js').Part} Part */

/**
 * Reads adjacent parts in one preadv in the thread pool; each part's done is called once its
 * bytes are in. A short read (end of file, a signal) finishes the rest part by part, as read() does.
 * @param {FileBacking} file @param {Buffer} mem @param {Part[]} run
 */
export function readRun(file, mem, run) {
  if (run.length === 1) { const p = run[0]; file.readAsync(mem, p.at, p.length, p.position, p.done); return; }
  fs.readv(file.fd, run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position, (err, n) => {
    if (err) { for (const p of run) p.done(err); return; }
    finishRun(run, n, (p) => p.done(null), (p, skip) => file.readAsync(mem, p.at + skip, p.length - skip, p.position + skip, p.done));
  });
}

/**
 * Writes adjacent parts in one pwritev in the thread pool, or on the file's write thread (see
 * readRun); each part's done is called once all of it is written.
 * @param {FileBacking} file @param {Buffer} mem @param {Part[]} run
 */
export function writeRun(file, mem, run) {
  if (file.readOnly) { for (const p of run) p.done(readOnlyError(file.path)); return; }
  for (const p of run) file.written.mark(p.position, p.length);
  const lane = file.writeLane();
  if (lane) {
    lane.write(run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position, (err) => {
      for (const p of run) { file.ownWrites++; p.done(err); }
    });
    return;
  }
  if (run.length === 1) { const p = run[0]; file.writeAsync(mem, p.at, p.length, p.position, p.done); return; }
  fs.writev(file.fd, run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position, (err, n) => {
    if (err) {
      for (const p of run) { file.ownWrites++; p.done(err); }
      return;
    }
    const whole = (/** @type {Part} */ p) => { file.ownWrites++; p.done(null); };
    finishRun(run, n, whole, (p, skip) => file.writeAsync(mem, p.at + skip, p.length - skip, p.position + skip, p.done));
  });
}

/**
 * Reads adjacent small parts in one preadv on the event loop, where each would have been read
 * by itself (Engine.executeRun). A short read finishes the rest part by part, as read() does.
 * @param {FileBacking} file @param {Buffer} mem @param {Part[]} run
 */
export function readRunNow(file, mem, run) {
  let n;
  try {
    n = fs.readvSync(file.fd, run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position);
  } catch (e) {
    for (const p of run) p.done(/** @type {NodeJS.ErrnoException} */ (e));
    return;
  }
  finishRun(run, n, (p) => p.done(null), (p, skip) => file.read(mem, p.at + skip, p.length - skip, p.position + skip, p.done));
}

/**
 * Writes adjacent small parts in one pwritev on the event loop (see readRunNow). A short write
 * finishes the rest part by part, as write() does.
 * @param {FileBacking} file @param {Buffer} mem @param {Part[]} run
 */
export function writeRunNow(file, mem, run) {
  if (file.readOnly) { for (const p of run) p.done(readOnlyError(file.path)); return; }
  for (const p of run) file.written.mark(p.position, p.length);
  let n;
  try {
    n = fs.writevSync(file.fd, run.map((p) => mem.subarray(p.at, p.at + p.length)), run[0].position);
  } catch (e) {
    for (const p of run) { file.ownWrites++; p.done(/** @type {NodeJS.ErrnoException} */ (e)); }
    return;
  }
  const whole = (/** @type {Part} */ p) => { file.ownWrites++; p.done(null); };
  finishRun(run, n, whole, (p, skip) => file.write(mem, p.at + skip, p.length - skip, p.position + skip, p.done));
}

/**
 * After a vectored transfer moved n bytes: `whole` for each part they covered, `rest` for the
 * others (the part, bytes of it already moved).
 * @param {Part[]} run @param {number} n @param {(p: Part) => void} whole
 * @param {(p: Part, skip: number) => void} rest
 */
function finishRun(run, n, whole, rest) {
  for (const p of run) {
    if (n >= p.length) { n -= p.length; whole(p); }
    else { rest(p, n); n = 0; }
  }
}
