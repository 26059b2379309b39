// @ts-check
// Where a connection is (Connection.phase): what its next input bytes are.

/** Client flags (the 4 bytes after the greeting). */
export const FLAGS = 0;
/** An option header; its data follows (OPTION_DATA), or is skipped when too large (OPTION_SKIP). */
export const OPTION_HEADER = 1;
export const OPTION_DATA = 2;
export const OPTION_SKIP = 3;
/** Requests (after GO or EXPORT_NAME). */
export const TRANSMISSION = 4;
/** Nothing: input is ignored. */
export const CLOSED = 5;
/** STARTTLS was acknowledged: nothing may arrive in plain text until TLS is up. */
export const TLS_HANDSHAKE = 6;
