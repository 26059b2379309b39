// @ts-check
// How a Transmission answers a READ: a large read of a pass-through device straight from the
// backing files (sendfile), any other from core memory. Without structured replies the data
// follows a simple reply; with them a read comes back as OFFSET_DATA and OFFSET_HOLE chunks, a
// hole wherever whole 64 KiB pieces, or the whole read, came back as zeroes.
import { CMD_FLAG } from '../protocol/constants.js';

/** @typedef {import('./transmission.js').Transmission} Transmission */
/** @typedef {import('./request-reader.js').NbdRequest} NbdRequest */
/** @typedef {import('../protocol/errors.js').NbdError} NbdError */

const HOLE_GRANULE = 64 * 1024;
const ZEROES = Buffer.alloc(HOLE_GRANULE);

/** @param {Buffer} mem */
function allZero(mem, start, length) {
  for (let at = 0; at < length; at += HOLE_GRANULE) {
    const n = Math.min(HOLE_GRANULE, length - at);
    if (mem.compare(ZEROES, 0, n, start + at, start + at + n) !== 0) return false;
  }
  return true;
}

/** Runs a READ on the export and answers it. @param {Transmission} tx @param {NbdRequest} req */
export function replyToRead(tx, req) {
  const { offset, length } = req;
  if (length >= tx.writer.sendFilesMin && tx.exp.canReadToSink(offset, length, tx.structured)) {
    readToSocket(tx, req);
    return;
  }
  tx.hold(length);
  tx.exp.read(offset, length, (e, ptr, skip) => answerRead(tx, req, e, ptr, skip));
}

/**
 * A large read of a pass-through device: its bytes go from the backing files to the socket
 * (sendfile) after the reply's header, one OFFSET_DATA chunk when structured. When the core
 * maps it some other way after all, it is answered from memory as usual.
 * @param {Transmission} tx @param {NbdRequest} req
 */
function readToSocket(tx, req) {
  const { offset, length } = req;
  tx.hold(length);
  let queued = false; // whether the reply's header is queued: from then on it cannot become an error
  tx.exp.readToSink(offset, length, (pieces, complete) => {
    // The bytes are read into the page cache first: a disk's read error gets an error reply.
    /** @type {import('./reply-writer.js').FileSenderSpec} */ (tx.writer.sender).checkReadable(pieces, (error) => {
      if (error) { complete(error, true); return; }
      queued = true;
      tx.writer.fileReply(tx.structured, req.cookieHi, req.cookieLo, offset, pieces, complete, tx.echo(req));
    });
  }, (e, ptr, skip, sunk) => {
    if (!sunk || (e && !queued)) { answerRead(tx, req, e, ptr, skip); return; }
    if (!e) tx.exp.sentFromFiles++;
    tx.release(length);
    tx.answered();
    // Its header is out already: a reply that could not be finished ends the connection.
    if (e) tx.o.onFatal(`a read reply could not be sent: ${e.message}`);
  });
}

/**
 * Answers a READ whose data is in core memory (or that failed).
 * @param {Transmission} tx @param {NbdRequest} req @param {NbdError | null} e
 */
function answerRead(tx, req, e, ptr, skip) {
  const { offset, length } = req;
  if (e) { tx.release(length); tx.fail(req, e, offset); return; }
  const release = () => { tx.exp.free(ptr); tx.release(length); };
  tx.answered();
  const mem = tx.mem();
  const start = ptr + skip;
  const w = tx.writer;
  const ext = tx.echo(req);
  if (!tx.structured) {
    w.simple(0, req.cookieHi, req.cookieLo);
    w.payload(mem, start, length, release);
  } else if (length === 0) {
    w.none(req.cookieHi, req.cookieLo, ext);
    release();
  } else if (length <= HOLE_GRANULE || (req.flags & CMD_FLAG.DF)) {
    if (allZero(mem, start, length)) {
      w.hole(true, req.cookieHi, req.cookieLo, offset, length, ext);
      release();
    } else {
      w.dataHeader(true, req.cookieHi, req.cookieLo, offset, length, ext);
      w.payload(mem, start, length, release);
    }
  } else {
    chunkedRead(tx, req, mem, start, release);
  }
}

/**
 * A structured read reply cut into data and hole chunks at 64 KiB pieces.
 * @param {Transmission} tx @param {NbdRequest} req @param {Buffer} mem @param {number} start
 * @param {() => void} release
 */
function chunkedRead(tx, req, mem, start, release) {
  const { offset, length, cookieHi: hi, cookieLo: lo } = req;
  const ext = tx.echo(req);
  /** @type {Array<[boolean, number, number]>} zero?, from, bytes */
  const runs = [];
  for (let at = 0; at < length; at += HOLE_GRANULE) {
    const n = Math.min(HOLE_GRANULE, length - at);
    const zero = mem.compare(ZEROES, 0, n, start + at, start + at + n) === 0;
    const last = runs[runs.length - 1];
    if (last && last[0] === zero) last[2] += n;
    else runs.push([zero, at, n]);
  }
  const w = tx.writer;
  if (runs.length === 1 && !runs[0][0]) { // all data (the usual case): one chunk
    w.dataHeader(true, hi, lo, offset, length, ext);
    w.payload(mem, start, length, release);
    return;
  }
  let users = 1;
  const drop = () => { if (--users === 0) release(); };
  runs.forEach(([zero, at, n], i) => {
    const done = i === runs.length - 1;
    if (zero) {
      w.hole(done, hi, lo, offset + at, n, ext);
    } else {
      users++;
      w.dataHeader(done, hi, lo, offset + at, n, ext);
      w.payload(mem, start + at, n, drop);
    }
  });
  drop();
}
