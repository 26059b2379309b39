// @ts-check
// A connection's handshake phase: its input bytes cut into client flags, option headers and
// option data (too large: read and dropped), each option run as negotiation.js decides (replies
// written, then go on, close, STARTTLS or GO). Connection's methods of the same names call these;
// the connection keeps the state (phase, pending, option, optionLength, skipLeft, negotiation).
import { OPTION_HEADER_BYTES, OPT, REP } from '../protocol/constants.js';
import { parseClientFlags, parseOptionHeader, optionError } from '../protocol/handshake.js';
import { Negotiation } from './negotiation.js';
import { startTls as startTlsSession } from './tls.js';
import { FLAGS, OPTION_HEADER, OPTION_DATA, OPTION_SKIP, CLOSED, TLS_HANDSHAKE } from './connection-phases.js';

/** @typedef {import('./connection.js').Connection} Connection */

/** Takes n bytes from the handshake input, or null if they have not all arrived. @param {Connection} conn @param {number} n */
export function take(conn, n) {
  if (conn.pending.length < n) return null;
  const b = conn.pending.subarray(0, n);
  conn.pending = conn.pending.subarray(n);
  return b;
}

/** @param {Connection} conn */
export function handshake(conn) {
  for (;;) {
    if (conn.phase === FLAGS) {
      const b = take(conn, 4);
      if (!b) return;
      const flags = parseClientFlags(b);
      if (!flags.ok) { conn.close(flags.error, true); return; }
      conn.negotiation = new Negotiation(conn.host.exports, flags, conn.tlsState());
      conn.phase = OPTION_HEADER;
    } else if (conn.phase === OPTION_HEADER) {
      const b = take(conn, OPTION_HEADER_BYTES);
      if (!b) return;
      const h = parseOptionHeader(b);
      if (!h.ok) { conn.close(h.error, true); return; }
      conn.option = h.option;
      conn.optionLength = h.length;
      if (h.length > conn.host.limits.maxOptionBytes) {
        conn.skipLeft = h.length;
        conn.phase = OPTION_SKIP;
      } else {
        conn.phase = OPTION_DATA;
      }
    } else if (conn.phase === OPTION_DATA) {
      const data = take(conn, conn.optionLength);
      if (!data) return;
      conn.phase = OPTION_HEADER;
      if (!runOption(conn, conn.option, Buffer.from(data))) return;
    } else if (conn.phase === OPTION_SKIP) {
      const n = Math.min(conn.skipLeft, conn.pending.length);
      conn.pending = conn.pending.subarray(n);
      conn.skipLeft -= n;
      if (conn.skipLeft > 0) return;
      conn.phase = OPTION_HEADER;
      const why = `option data of ${conn.optionLength} bytes is larger than ${conn.host.limits.maxOptionBytes}`;
      if (conn.option === OPT.EXPORT_NAME) { conn.close(why, true); return; }
      conn.output.write(optionError(conn.option, REP.ERR_TOO_BIG, why));
    } else {
      // TRANSMISSION: whatever followed the GO reply in the same chunk is the first requests.
      const rest = conn.pending;
      conn.pending = Buffer.alloc(0);
      if (rest.length > 0) conn.feed(rest, 0);
      return;
    }
  }
}

/** @param {Connection} conn @returns {boolean} whether to go on reading input in the handshake loop */
export function runOption(conn, option, data) {
  const neg = /** @type {Negotiation} */ (conn.negotiation);
  const outcome = neg.handle(option, data);
  if (outcome.next === 'starttls') return startTls(conn, outcome.replies[0]);
  if (outcome.replies.length > 0) conn.output.write(outcome.replies.length === 1 ? outcome.replies[0] : Buffer.concat(outcome.replies));
  switch (outcome.next) {
    case 'continue': return true;
    case 'abort': conn.close('client aborted the handshake'); return false;
    case 'close': conn.close(/** @type {string} */ (outcome.reason), true); return false;
    case 'go': return conn.go(/** @type {any} */ (outcome.export), /** @type {string} */ (outcome.name));
    default: return false;
  }
}

/**
 * Sends STARTTLS's ACK, then runs the TLS handshake on the socket; haggling starts over inside
 * TLS with a fresh negotiation (nothing agreed in plain text carries over). A client may not
 * send anything between the option and the handshake: bytes that arrived in plain text after
 * STARTTLS would otherwise be taken as if they came through TLS.
 * @param {Connection} conn @param {Buffer} ack
 */
export function startTls(conn, ack) {
  if (conn.pending.length > 0) {
    conn.close('plain-text data followed NBD_OPT_STARTTLS before the TLS handshake', true);
    return false;
  }
  const raw = /** @type {import('node:net').Socket} */ (conn.input);
  conn.phase = TLS_HANDSHAKE;
  conn.detach();
  raw.on('error', () => {}); // the TLS socket reports what happens on it from now on
  raw.write(ack, () => {
    if (conn.phase === CLOSED) return;
    const { secure, ready } = startTlsSession(raw, /** @type {import('./tls.js').TlsConfig} */ (conn.host.tls));
    // The TLS socket owns the connection now: close() must destroy it, not the raw one.
    conn.input = conn.output = secure;
    ready.then(() => {
      if (conn.phase === CLOSED) return;
      conn.secure = true;
      conn.attach();
      const flags = /** @type {Negotiation} */ (conn.negotiation).client;
      conn.negotiation = new Negotiation(conn.host.exports, flags, conn.tlsState());
      conn.phase = OPTION_HEADER;
      conn.log(`TLS established (${secure.getProtocol()}, ${secure.getCipher()?.name ?? 'unknown cipher'})`);
    }, (e) => conn.close(e.message, true));
  });
  return false;
}
