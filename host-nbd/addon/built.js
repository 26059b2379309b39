// @ts-check
// The native addon for dmkit serve's optional native paths (sendfile for large reads, a write
// thread per file for large writes): loaded only if built and up to date, never built here.
// Serving works without it, so what is missing is returned as a reason to report, not thrown.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { ADDON_PATH, addonIsStale } from './build.js';

const require = createRequire(import.meta.url);

/**
 * @param {string} use what the addon would be used for, for the reason ("sendfile")
 * @param {string} exportName the function or class that use needs
 * @returns {{addon: any, why: null} | {addon: null, why: string}}
 */
export function loadBuiltAddon(use, exportName) {
  if (process.platform !== 'linux') return { addon: null, why: `${use} is used on Linux only (this is ${process.platform})` };
  if (!existsSync(ADDON_PATH)) {
    return { addon: null, why: `the native addon is not built (${ADDON_PATH}; build it with \`npm run build:addon\`)` };
  }
  if (addonIsStale()) {
    return { addon: null, why: `the native addon is older than its sources (${ADDON_PATH}; rebuild it with \`npm run build:addon\`)` };
  }
  try {
    const addon = require(ADDON_PATH);
    if (typeof addon[exportName] !== 'function') return { addon: null, why: `the native addon has no ${exportName} (rebuild it)` };
    return { addon, why: null };
  } catch (e) {
    return { addon: null, why: `cannot load the native addon: ${e instanceof Error ? e.message : e}` };
  }
}
