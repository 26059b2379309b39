// @ts-check
// The numbers of the NBD protocol (NetworkBlockDevice/nbd, doc/proto.md), by the spec's names.
// Everything on the wire is big-endian.

// ---- handshake
export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT": newstyle magic, and each option's magic
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;

/** Handshake flags (server, 16 bits). */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;

/** Client flags (32 bits). Anything else set means: close the connection. */
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;

/** Options. */
export const OPT = Object.freeze({
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
});

/** Option reply types; errors have bit 31 set. */
export const REP = Object.freeze({
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
  ERR_EXT_HEADER_REQD: 0x8000000a,
});

/** Information types in NBD_REP_INFO (answers to NBD_OPT_INFO / NBD_OPT_GO). */
export const INFO = Object.freeze({ EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 });

/** Transmission flags (16 bits, sent with the export). */
export const TFLAG = Object.freeze({
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
});

// ---- transmission
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
/** With NBD_OPT_EXTENDED_HEADERS: 32-byte requests and replies, 64-bit lengths. */
export const EXTENDED_REQUEST_MAGIC = 0x21e41c71;
export const EXTENDED_REPLY_MAGIC = 0x6e8a278c;

/** Commands. */
export const CMD = Object.freeze({
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
});
export const CMD_NAMES = ['READ', 'WRITE', 'DISC', 'FLUSH', 'TRIM', 'CACHE', 'WRITE_ZEROES', 'BLOCK_STATUS'];

/** Command flags (16 bits). */
export const CMD_FLAG = Object.freeze({
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
  /** Extended headers only: a payload of `length` bytes follows (else `length` is an effect length). */
  PAYLOAD_LEN: 1 << 5,
});

/** Structured reply flags and chunk types. */
export const REPLY_FLAG_DONE = 1 << 0;
export const REPLY_TYPE = Object.freeze({
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  /** Extended headers only: 64-bit extent lengths. */
  BLOCK_STATUS_EXT: 6,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
});

/** Error values: the only ones the spec allows on the wire. */
export const NBD_ERR = Object.freeze({
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
});

/** base:allocation extent flags. */
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;
export const BASE_ALLOCATION = 'base:allocation';

// ---- sizes of fixed parts
export const GREETING_BYTES = 18;
export const OPTION_HEADER_BYTES = 16;
export const REQUEST_BYTES = 28;
export const EXTENDED_REQUEST_BYTES = 32;
export const SIMPLE_REPLY_BYTES = 16;
export const STRUCTURED_HEADER_BYTES = 20;
export const EXTENDED_HEADER_BYTES = 32;
/** Strings (export names, queries, messages) may be at most this long. */
export const MAX_STRING = 4096;
