// @ts-check
// Directed reads of a socket the server adopted (server.js adopt()): Node asks the connection
// where each read goes (readTarget) and hands it what arrived (onRead). The rest of a large
// WRITE payload goes straight to its core buffer; every other read to the connection's scratch
// buffer. Connection's methods of the same names call these; the connection keeps the buffers
// (scratch, scratchHead, direct).
import { TRANSMISSION, CLOSED } from './connection-phases.js';

/** @typedef {import('./connection.js').Connection} Connection */

/** WRITE payloads with at least this much still to come are read straight into core memory. */
const DIRECT_MIN = 32 * 1024;
const DIRECT_MAX = 8 << 20;

/**
 * Where the next read of the socket goes (called by Node before each read). The rest of a
 * large WRITE payload goes to its core buffer; after one, reads stop at the end of the next
 * request header (in the scratch buffer), so that a following large payload goes to its core
 * buffer too.
 * @param {Connection} conn
 */
export function readTarget(conn) {
  const tx = conn.tx;
  const scratch = /** @type {Buffer} */ (conn.scratch);
  conn.direct = null;
  if (!tx || conn.phase !== TRANSMISSION) return scratch;
  conn.direct = tx.reader.directTarget(tx.mem(), DIRECT_MIN, DIRECT_MAX);
  if (conn.direct) return conn.direct;
  const head = tx.reader.headerTarget(DIRECT_MIN);
  if (head === 0 || head >= scratch.length) return scratch;
  return head === conn.scratchHead.length ? conn.scratchHead : scratch.subarray(0, head);
}

/**
 * n bytes arrived in buf. Returns false to stop reading (Node pauses the socket) while
 * requests wait in the stash.
 * @param {Connection} conn @param {number} n @param {Buffer} buf
 */
export function onRead(conn, n, buf) {
  if (conn.phase === CLOSED || conn.threadInput) return false;
  if (buf === conn.direct) {
    conn.lastInput = performance.now();
    /** @type {import('./transmission.js').Transmission} */ (conn.tx).reader.stored(n);
    return true;
  }
  if (conn.phase === TRANSMISSION) {
    conn.onData(buf.subarray(0, n)); // the stash may point into the scratch buffer: reading stops then
    return conn.stash === null;
  }
  conn.onData(Buffer.from(buf.subarray(0, n))); // the handshake keeps bytes across reads
  return true;
}
