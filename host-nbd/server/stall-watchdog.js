// @ts-check
// The transmission phase's watchdog: checks, a few times per stall limit, that half-sent
// requests and unread replies keep moving (limits.stallMs). The connection keeps the times
// (lastInput, set as input arrives; lastOutput, lastOutputLength) and clears the watchdog at close.
import { TRANSMISSION } from './connection-phases.js';

/** @typedef {import('./connection.js').Connection} Connection */

/** Starts checking the connection, which enters the transmission phase now. @param {Connection} conn */
export function watchStalls(conn) {
  conn.lastInput = conn.lastOutput = performance.now();
  const stallMs = conn.host.limits.stallMs;
  conn.watchdog = setInterval(() => conn.checkStall(stallMs), Math.max(50, stallMs / 4));
  conn.watchdog.unref?.();
}

/**
 * Closes a connection whose client stopped half-way through a request, or stopped reading
 * replies (they wait in the socket and nothing of them leaves), for stallMs. A connection that
 * is merely idle, or waits for slow backing I/O, is left alone.
 * @param {Connection} conn @param {number} stallMs
 */
export function checkStall(conn, stallMs) {
  const tx = conn.tx;
  if (!tx || conn.phase !== TRANSMISSION) return;
  const now = performance.now();
  const threadMid = conn.threadInput?.midRequestMs(now) ?? 0;
  if ((tx.reader.midRequest && !conn.stash && now - conn.lastInput > stallMs) || threadMid > stallMs) {
    conn.close(`a request stopped arriving half-way: nothing for ${stallMs} ms`, true);
    return;
  }
  const queued = conn.output.writableLength;
  if (queued === 0 || queued < conn.lastOutputLength) conn.lastOutput = now;
  conn.lastOutputLength = queued;
  if (now - conn.lastOutput > stallMs) conn.close(`the client stopped reading replies: none taken for ${stallMs} ms`, true);
}
