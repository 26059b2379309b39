// @ts-check
// Loads the native addon (host-nbd/addon), building it on first use when npm install could not.
// Only `dmkit attach`/`detach` come here; `dmkit serve` loads the addon only if built
// (host-nbd/addon/built.js). Everything else in dmkit runs without it.
import { createRequire } from 'node:module';
import { accessSync, constants } from 'node:fs';
import { ADDON_DIR, ADDON_PATH, addonIsStale, buildAddon } from '../addon/build.js';
import { AttachError } from './errors.js';

const require = createRequire(import.meta.url);

/**
 * @typedef {object} NativeAddon
 * @property {() => [number, number]} socketPair
 * @property {(fd: number) => number} dupFd
 * @property {(fd: number) => void} closeFd
 * @property {(fd: number) => void} setBlocking
 * @property {(path: string) => number} lockFile
 * @property {() => boolean} netlinkProbe
 * @property {(p: object) => number} netlinkConnect
 * @property {(p: object) => Promise<void>} netlinkReconfigure
 * @property {(p: {index: number, sizeBytes: number, blockSize: number, backend?: string}) => Promise<void>} netlinkResize
 * @property {(index: number) => Promise<void>} netlinkDisconnect
 * @property {(p: object, onReady: (err: Error | null) => void) => Promise<void>} ioctlAttach
 * @property {(path: string, sizeBytes: number) => Promise<void>} ioctlSetSize
 * @property {(path: string) => Promise<void>} ioctlDisconnect
 * @property {(path: string, exclusive: boolean) => Promise<void>} flushDevice
 * @property {() => Promise<void>} syncAll
 */

/** @type {NativeAddon | null} */
let loaded = null;

/** The addon, built if missing or older than its sources. Throws AttachError when unavailable. */
export function loadNative() {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    throw new AttachError(`attaching NBD devices needs Linux's nbd driver; this is ${process.platform}. ` +
      'Serve with `dmkit serve` and connect with an NBD client instead.');
  }
  if (addonIsStale()) {
    if (!writable(ADDON_DIR)) {
      throw new AttachError(`the native addon is not built and ${ADDON_DIR} is read-only: ` +
        'build it where the checkout is writable with `node host-nbd/addon/build.js`');
    }
    const why = buildAddon({ quiet: true, ifStale: true });
    if (why) throw new AttachError(`the native addon needed by attach cannot be built: ${why}`);
  }
  try {
    loaded = /** @type {NativeAddon} */ (require(ADDON_PATH));
  } catch (e) {
    throw new AttachError(`cannot load the native addon ${ADDON_PATH}: ${e instanceof Error ? e.message : e}`);
  }
  return loaded;
}

function writable(dir) {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
