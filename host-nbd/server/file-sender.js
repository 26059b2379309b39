// @ts-check
// The native half of sending large reads straight from backing files (sendfile; see
// reply-writer.js): the addon's sendPieces, when the addon is built. Serving works without it,
// every read then passing through memory, so a missing or stale addon is only reported.
import { loadBuiltAddon } from '../addon/built.js';

/** Reads at least this large go from the files to the socket by default (dmkit serve --sendfile-min). */
export const DEFAULT_SENDFILE_MIN = 128 * 1024;

/**
 * @param {number} min reads of at least this many bytes; 0 turns it off
 * @returns {{sender: import('./reply-writer.js').FileSenderSpec | null, why: string | null}}
 */
export function loadFileSender(min) {
  if (min <= 0) return { sender: null, why: null };
  const { addon, why } = loadBuiltAddon('sendfile', 'checkReadable');
  if (!addon) return { sender: null, why };
  return { sender: { min, sendPieces: addon.sendPieces, checkReadable: addon.checkReadable }, why: null };
}
