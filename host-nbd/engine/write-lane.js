// @ts-check
// Large writes of one backing file on a thread that stays with that file (the native addon's
// WriteLane; why not libuv's pool: host-nbd/addon/src/write_lane.h). Serving works without it,
// large writes then going to the pool, so a missing or stale addon is only reported.
import { getSystemErrorName } from 'node:util';
import { loadBuiltAddon } from '../addon/built.js';

/** @typedef {(error: NodeJS.ErrnoException | null) => void} Done */
/**
 * What opens a lane for a file; null when its thread cannot start (the reason is logged, and that
 * file's large writes go to the pool).
 * @typedef {{open: (fd: number, path: string) => FileWriteLane | null}} WriteLanes
 */

/**
 * @param {(line: string) => void} log
 * @returns {{lanes: WriteLanes | null, why: string | null}}
 */
export function loadWriteLanes(log) {
  const { addon, why } = loadBuiltAddon('write threads', 'WriteLane');
  if (!addon) return { lanes: null, why };
  const open = (/** @type {number} */ fd, /** @type {string} */ path) => {
    try {
      return new FileWriteLane(addon.WriteLane, fd, path);
    } catch (e) {
      log(`${path}: large writes go to the thread pool: ${e instanceof Error ? e.message : e}`);
      return null;
    }
  };
  return { lanes: { open }, why: null };
}

/** A file's write thread. Keep it referenced while writes are pending (their buffers too). */
export class FileWriteLane {
  /** @param {any} Native the addon's WriteLane class @param {number} fd @param {string} path */
  constructor(Native, fd, path) {
    this.path = path;
    /** @type {Map<number, {done: Done, buffers: Uint8Array[]}>} the buffers stay referenced until written */
    this.jobs = new Map();
    this.nextId = 1;
    this.native = new Native(fd, (/** @type {Float64Array} */ pairs) => this.delivered(pairs));
  }

  /**
   * Writes the buffers, in order, at position; done once all of it is written (or failed).
   * @param {Uint8Array[]} buffers @param {number} position @param {Done} done
   */
  write(buffers, position, done) {
    const id = this.nextId++;
    this.jobs.set(id, { done, buffers });
    this.native.write(id, buffers, position);
  }

  /** @param {Float64Array} pairs (id, bytes written or -errno) */
  delivered(pairs) {
    for (let i = 0; i < pairs.length; i += 2) {
      const job = this.jobs.get(pairs[i]);
      if (!job) continue;
      this.jobs.delete(pairs[i]);
      const r = pairs[i + 1];
      job.done(r >= 0 ? null : laneError(this.path, -r));
    }
  }

  /**
   * Waits for the writes pushed so far, then stops the thread. Their done callbacks run on a
   * later turn, as they would have, not inside the caller's close.
   */
  close() {
    const rest = this.native.close();
    if (rest.length > 0) setImmediate(() => this.delivered(rest));
  }
}

/** @param {string} path @param {number} errno */
function laneError(path, errno) {
  const code = getSystemErrorName(-errno);
  return Object.assign(new Error(`pwritev ${path}: ${code}`), { code, errno, syscall: 'pwritev' });
}
