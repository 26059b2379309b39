// @ts-check
// Option haggling (fixed newstyle): one option in, its replies out, and what happens next.
// No sockets here: the connection reads options and writes the replies this returns (handshake-phase.js).
//
// Supported: EXPORT_NAME, ABORT, LIST, INFO, GO (INFO_EXPORT, NAME, DESCRIPTION, BLOCK_SIZE),
// STRUCTURED_REPLY, EXTENDED_HEADERS (32-byte headers and 64-bit lengths in transmission; it
// stands in for structured replies), LIST_META_CONTEXT and SET_META_CONTEXT with
// base:allocation, and STARTTLS when the server has TLS (server/tls.js). Anything else gets NBD_REP_ERR_UNSUP and haggling
// goes on. With TLS required, everything but STARTTLS and ABORT waits for TLS.
import { OPT, REP, INFO, TFLAG, BASE_ALLOCATION } from '../protocol/constants.js';
import {
  optionReply, optionError, exportNameReply, parseInfoRequest, parseMetaContextRequest,
  serverReplyData, infoExport, infoString, infoBlockSize, metaContextReplyData,
} from '../protocol/handshake.js';
import { MAX_REQUEST } from '../engine/device-export.js';

/** The id under which base:allocation is selected (ids are per connection and opaque). */
export const BASE_ALLOCATION_ID = 1;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * @typedef {{name: string, description: string, readOnly: boolean, size(): number}} ExportLike
 * @typedef {{getExport(name: string): ExportLike | null, listExports(): ExportLike[]}} Exports
 * @typedef {{next: 'continue' | 'abort' | 'close' | 'go' | 'starttls', replies: Buffer[], export?: ExportLike, name?: string, reason?: string}} Outcome
 *   (`name`: the export name the client used, which metadata contexts are tied to)
 */

/** The transmission flags of an export for this connection. */
export function transmissionFlags(exp, structured) {
  let flags = TFLAG.HAS_FLAGS | TFLAG.SEND_FLUSH | TFLAG.SEND_CACHE | TFLAG.CAN_MULTI_CONN;
  if (exp.readOnly) flags |= TFLAG.READ_ONLY;
  else flags |= TFLAG.SEND_FUA | TFLAG.SEND_TRIM | TFLAG.SEND_WRITE_ZEROES | TFLAG.SEND_FAST_ZERO;
  if (structured) flags |= TFLAG.SEND_DF;
  return flags;
}

export class Negotiation {
  /**
   * @param {Exports} exports @param {{noZeroes: boolean, fixedNewstyle: boolean}} client
   * @param {{mode: 'off' | 'on' | 'require', active: boolean, available?: boolean}} [tls] TLS offered,
   *   whether it is up, and whether this connection can start it (not over --stdio)
   */
  constructor(exports, client, tls = { mode: 'off', active: false, available: true }) {
    this.exports = exports;
    this.client = client;
    this.tls = tls;
    /** Structured replies (also true with extended headers, which include them). */
    this.structured = false;
    this.extended = false;
    /** Metadata contexts selected by the last SET_META_CONTEXT, and for which export. */
    this.contexts = /** @type {{id: number, name: string}[]} */ ([]);
    this.contextsExport = /** @type {string | null} */ (null);
  }

  /** The contexts that hold for the export chosen at GO / EXPORT_NAME. */
  contextsFor(name) {
    return this.contextsExport === name ? this.contexts : [];
  }

  /**
   * @param {number} option @param {Buffer} data
   * @returns {Outcome}
   */
  handle(option, data) {
    if (!this.client.fixedNewstyle && option !== OPT.EXPORT_NAME) {
      // Plain newstyle knows no other option and cannot read our replies: the spec's old answer.
      return { next: 'close', replies: [], reason: `option ${option} from a client without fixed newstyle` };
    }
    if (this.tls.mode === 'require' && !this.tls.active && option !== OPT.STARTTLS && option !== OPT.ABORT) {
      // NBD_OPT_EXPORT_NAME cannot be answered with an error: the spec says to hang up.
      if (option === OPT.EXPORT_NAME) return { next: 'close', replies: [], reason: 'TLS is required, and the client sent NBD_OPT_EXPORT_NAME without it' };
      return this.error(option, REP.ERR_TLS_REQD, 'TLS is required on this server: send NBD_OPT_STARTTLS first');
    }
    switch (option) {
      case OPT.EXPORT_NAME: return this.exportName(data);
      case OPT.ABORT: return { next: 'abort', replies: [optionReply(option, REP.ACK)] };
      case OPT.LIST: return this.list(data);
      case OPT.INFO: case OPT.GO: return this.infoOrGo(option, data);
      case OPT.STRUCTURED_REPLY: return this.structuredReply(data);
      case OPT.EXTENDED_HEADERS: return this.extendedHeaders(data);
      case OPT.LIST_META_CONTEXT: case OPT.SET_META_CONTEXT: return this.metaContext(option, data);
      case OPT.STARTTLS: return this.startTls(data);
      default: return this.error(option, REP.ERR_UNSUP, `option ${option} is not supported`);
    }
  }

  /** @returns {Outcome} */
  startTls(data) {
    const option = OPT.STARTTLS;
    if (this.tls.mode === 'off') return this.error(option, REP.ERR_UNSUP, 'TLS is not enabled on this server (it is started with --tls=on or --tls=require)');
    if (this.tls.available === false) return this.error(option, REP.ERR_UNSUP, 'TLS cannot start over standard input/output');
    if (this.tls.active) return this.error(option, REP.ERR_INVALID, 'TLS is already active on this connection');
    if (data.length > 0) return this.error(option, REP.ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
    return { next: 'starttls', replies: [optionReply(option, REP.ACK)] };
  }

  /** @returns {Outcome} */
  error(option, type, message) {
    return { next: 'continue', replies: [optionError(option, type, message)] };
  }

  /** NBD_OPT_EXPORT_NAME cannot fail politely: an unknown export ends the session. @returns {Outcome} */
  exportName(data) {
    if (this.extended) return { next: 'close', replies: [], reason: 'NBD_OPT_EXPORT_NAME after extended headers were negotiated (the spec asks for NBD_OPT_GO)' };
    let name;
    try { name = utf8.decode(data); } catch { return { next: 'close', replies: [], reason: 'export name is not valid UTF-8' }; }
    const exp = this.exports.getExport(name);
    if (!exp) return { next: 'close', replies: [], reason: `no export named '${name}'` };
    const flags = transmissionFlags(exp, this.structured);
    return { next: 'go', export: exp, name, replies: [exportNameReply(exp.size(), flags, this.client.noZeroes)] };
  }

  /** @returns {Outcome} */
  list(data) {
    if (data.length > 0) return this.error(OPT.LIST, REP.ERR_INVALID, 'NBD_OPT_LIST takes no data');
    const replies = this.exports.listExports().map((e) => optionReply(OPT.LIST, REP.SERVER, serverReplyData(e.name, e.description)));
    replies.push(optionReply(OPT.LIST, REP.ACK));
    return { next: 'continue', replies };
  }

  /** @returns {Outcome} */
  infoOrGo(option, data) {
    const req = parseInfoRequest(data);
    if (!req.ok) return this.error(option, REP.ERR_INVALID, req.error);
    const exp = this.exports.getExport(req.name);
    if (!exp) return this.error(option, REP.ERR_UNKNOWN, `no export named '${req.name}'`);
    const replies = [optionReply(option, REP.INFO, infoExport(exp.size(), transmissionFlags(exp, this.structured)))];
    // The canonical name matters when the default export was asked for by the empty name.
    if (req.requests.includes(INFO.NAME) || req.name !== exp.name) replies.push(optionReply(option, REP.INFO, infoString(INFO.NAME, exp.name)));
    if (req.requests.includes(INFO.DESCRIPTION)) replies.push(optionReply(option, REP.INFO, infoString(INFO.DESCRIPTION, exp.description)));
    // Sent unasked too (allowed): clients that do not read it still get only the defaults' limits.
    replies.push(optionReply(option, REP.INFO, infoBlockSize(1, 4096, MAX_REQUEST)));
    replies.push(optionReply(option, REP.ACK));
    if (option === OPT.INFO) return { next: 'continue', replies };
    return { next: 'go', export: exp, name: req.name, replies };
  }

  /** @returns {Outcome} */
  structuredReply(data) {
    const option = OPT.STRUCTURED_REPLY;
    if (data.length > 0) return this.error(option, REP.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
    // No way back from extended headers to structured replies: the spec's answer for it.
    if (this.extended) return this.error(option, REP.ERR_EXT_HEADER_REQD, 'extended headers are negotiated already, and take the place of structured replies');
    if (this.structured) return this.error(option, REP.ERR_INVALID, 'structured replies are already negotiated');
    this.structured = true;
    return { next: 'continue', replies: [optionReply(option, REP.ACK)] };
  }

  /** @returns {Outcome} */
  extendedHeaders(data) {
    const option = OPT.EXTENDED_HEADERS;
    if (data.length > 0) return this.error(option, REP.ERR_INVALID, 'NBD_OPT_EXTENDED_HEADERS takes no data');
    if (this.extended) return this.error(option, REP.ERR_INVALID, 'extended headers are already negotiated');
    this.extended = true;
    this.structured = true;
    return { next: 'continue', replies: [optionReply(option, REP.ACK)] };
  }

  /** @returns {Outcome} */
  metaContext(option, data) {
    const set = option === OPT.SET_META_CONTEXT;
    if (set) { this.contexts = []; this.contextsExport = null; } // replaced even when this fails
    if (!this.structured) return this.error(option, REP.ERR_INVALID, 'negotiate structured replies or extended headers first');
    const req = parseMetaContextRequest(data);
    if (!req.ok) return this.error(option, REP.ERR_INVALID, req.error);
    if (!this.exports.getExport(req.name)) return this.error(option, REP.ERR_UNKNOWN, `no export named '${req.name}'`);
    // base:allocation is our only context. "base:" lists it (LIST only); unknown names are ignored.
    let match;
    if (set) match = req.queries.some((q) => q === BASE_ALLOCATION);
    else match = req.queries.length === 0 || req.queries.some((q) => q === BASE_ALLOCATION || q === 'base:');
    const replies = [];
    if (match) {
      const id = set ? BASE_ALLOCATION_ID : 0; // LIST replies carry no usable id
      replies.push(optionReply(option, REP.META_CONTEXT, metaContextReplyData(id, BASE_ALLOCATION)));
      if (set) this.contexts = [{ id, name: BASE_ALLOCATION }];
    }
    if (set) this.contextsExport = req.name;
    replies.push(optionReply(option, REP.ACK));
    return { next: 'continue', replies };
  }
}
