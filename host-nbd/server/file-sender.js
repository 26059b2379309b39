// @ts-check
// The native half of sending large reads straight from backing files (sendfile; see
// reply-writer.js): the addon's sendPieces, when the addon is built. Serving works without it,
// every read then passing through memory, so a missing or stale addon is only reported.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { ADDON_PATH, addonIsStale } from '../addon/build.js';

const require = createRequire(import.meta.url);

/** Reads at least this large go from the files to the socket by default (dmkit serve --sendfile-min). */
export const DEFAULT_SENDFILE_MIN = 128 * 1024;

/**
 * @param {number} min reads of at least this many bytes; 0 turns it off
 * @returns {{sender: import('./reply-writer.js').FileSenderSpec | null, why: string | null}}
 */
export function loadFileSender(min) {
  if (min <= 0) return { sender: null, why: null };
  if (process.platform !== 'linux') return { sender: null, why: `sendfile is used on Linux only (this is ${process.platform})` };
  if (!existsSync(ADDON_PATH) || addonIsStale()) {
    return { sender: null, why: `the native addon is not built (${ADDON_PATH}; build it with \`npm run build:addon\`)` };
  }
  try {
    const addon = require(ADDON_PATH);
    if (typeof addon.sendPieces !== 'function') return { sender: null, why: 'the native addon has no sendPieces (rebuild it)' };
    return { sender: { min, sendPieces: addon.sendPieces }, why: null };
  } catch (e) {
    return { sender: null, why: `cannot load the native addon: ${e instanceof Error ? e.message : e}` };
  }
}
