// @ts-check
// A connection's receive thread (receive-threads.js), from GO to close: started on a socket
// whose reads Node directs, the requests it did passed to the export and the transmission, and
// stopped with what it did accounted for. Connection's methods of the same names call these;
// the connection keeps the thread's input (threadInput) and decides whether to start one (go).
import { ThreadInput } from './thread-input.js';
import { TRANSMISSION } from './connection-phases.js';

/** @typedef {import('./connection.js').Connection} Connection */
/** @typedef {import('./transmission.js').Transmission} Transmission */

/**
 * From here on a thread reads the socket (receive-threads.js): Node stops reading it, and the
 * bytes that came after the GO option are the thread's first input.
 * @param {Connection} conn
 * @param {import('./receive-threads.js').ReceiveThreads} threads
 * @param {import('../engine/device-export.js').DeviceExport} exp
 */
export function startReceiver(conn, threads, exp) {
  conn.input.pause();
  const tx = /** @type {Transmission} */ (conn.tx);
  const { maxRequest, stallMs } = conn.host.limits;
  try {
    conn.threadInput = new ThreadInput(threads, conn.sockFd, conn.pending, exp.writeMap, { maxRequest, structured: tx.structured, stallMs }, {
      ready: () => !conn.stash && conn.phase === TRANSMISSION,
      parse: (bytes) => { conn.lastInput = performance.now(); conn.feed(bytes, 0); },
      requests: (records) => threadRequests(conn, records),
      ended: (reason, bad) => (bad ? conn.close(reason, true) : conn.shutdown(reason)),
    });
  } catch (e) {
    conn.log(`requests are read on the event loop: ${e instanceof Error ? e.message : e}`);
    conn.input.resume();
    return;
  }
  conn.pending = Buffer.alloc(0);
  tx.writer.share(conn.threadInput.native);
}

/** Requests the thread did: accounted for on the export, then counted (and answered). @param {Connection} conn @param {Float64Array} records */
export function threadRequests(conn, records) {
  const tx = /** @type {Transmission} */ (conn.tx);
  /** @type {import('../engine/device-export.js').DeviceExport} */ (conn.exp).threadIoDone(records);
  if (conn.phase !== TRANSMISSION) return;
  tx.threadRequests(records);
  if (tx.stopped()) conn.pauseInput(); // replies pile up: the client is not reading them
}

/** Stops the thread; what it did and nobody took yet is accounted for (and answered, unless closed). @param {Connection} conn */
export function stopReceiver(conn) {
  const input = conn.threadInput;
  if (!input) return;
  conn.threadInput = null;
  for (const records of input.stop()) threadRequests(conn, records);
  conn.tx?.writer.unshare();
}
