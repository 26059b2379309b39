// @ts-check
// Holes in image files, through the native addon (host-nbd/addon/src/holes.h): which ranges
// of a file are holes (lseek SEEK_DATA / SEEK_HOLE) and punching one (fallocate). Node has
// neither. Without the addon, block status knows only what a sparse image was at open and what
// we wrote since, and zeroing reads the range to skip what is zero already (file-zeroes.js).
import { loadBuiltAddon } from '../addon/built.js';

/** @typedef {(error: NodeJS.ErrnoException | null) => void} Done */
/** @typedef {{length: number, hole: boolean}} Run */
/**
 * @typedef {object} FileHoles
 * @property {(fd: number, at: number, length: number) => Run[]} runs   [at, at + length) cut into holes and data
 * @property {(fd: number, at: number, length: number, done: Done) => void} punch  deallocate (reads as zeroes after)
 */

/** @type {{holes: FileHoles | null, why: string | null} | undefined} undefined: not loaded yet */
let loaded;

/** The addon's hole functions, or null and why not (loaded once). */
export function loadFileHoles() {
  if (loaded === undefined) {
    const { addon, why } = loadBuiltAddon('holes in image files', 'punchHole');
    loaded = addon ? { holes: nativeHoles(addon), why: null } : { holes: null, why };
  }
  return loaded;
}

/** @returns {FileHoles} */
function nativeHoles(addon) {
  return {
    runs(fd, at, length) {
      /** @type {Run[]} */
      const out = [];
      const end = at + length;
      while (at < end) {
        const data = addon.seekData(fd, at); // -1: no data from here to the end of the file
        const dataAt = data < 0 ? end : Math.min(data, end);
        if (dataAt > at) out.push({ length: dataAt - at, hole: true });
        if (dataAt >= end) break;
        const hole = addon.seekHole(fd, dataAt);
        const holeAt = hole < 0 ? end : Math.min(hole, end);
        out.push({ length: holeAt - dataAt, hole: false });
        at = holeAt;
      }
      return out;
    },
    punch(fd, at, length, done) { addon.punchHole(fd, at, length, done); },
  };
}
