// @ts-check
// A batch's small reads or writes adjacent in one file, grouped so that each group of several
// goes as one preadv or pwritev on the event loop (Engine.executeRun). A sequential write to a
// snapshot's origin copies its chunks out so: 64 reads of 4 KiB chunks from the origin, then 64
// writes into consecutive COW chunks, per 256 KiB.
import { OP } from '../../core-as/js/dmcore.js';
import { MERGE_MAX_BYTES } from './transfer-plug.js';

/** A run of small adjacent commands (executeRun) holds at most this many (and MERGE_MAX_BYTES). */
export const RUN_MAX_PARTS = 256;

/**
 * The batch's plain commands in order, grouped: a group of several is a run of small reads or
 * writes adjacent in one file (each starting where the one before ended, same direction, no
 * FUA, each small enough to run on the event loop, together at most MERGE_MAX_BYTES).
 * @param {Uint32Array} c the batch's command records, 8 words each: cmd, backing, op, flags,
 *   sector (low, high word), sectors, buffer
 * @param {number[]} plain where the commands to group start in c, in order
 * @param {ArrayLike<{syncMaxBytes: number} | null | undefined>} files backing id -> file
 * @returns {number[][]}
 */
export function adjacentGroups(c, plain, files) {
  const groups = [];
  let k = 0;
  while (k < plain.length) {
    const i = plain[k];
    const group = [i];
    const file = files[c[i + 1]], op = c[i + 2];
    if (file && (op === OP.READ || op === OP.WRITE) && c[i + 3] === 0 && c[i + 6] * 512 <= file.syncMaxBytes) {
      let end = (c[i + 4] + c[i + 5] * 4294967296 + c[i + 6]) * 512, bytes = c[i + 6] * 512;
      for (let j = k + 1; j < plain.length && group.length < RUN_MAX_PARTS; j++) {
        const n = plain[j], length = c[n + 6] * 512;
        if (c[n + 1] !== c[i + 1] || c[n + 2] !== op || c[n + 3] !== 0 || length > file.syncMaxBytes) break;
        if ((c[n + 4] + c[n + 5] * 4294967296) * 512 !== end || bytes + length > MERGE_MAX_BYTES) break;
        group.push(n);
        end += length;
        bytes += length;
      }
    }
    groups.push(group);
    k += group.length;
  }
  return groups;
}
