// @ts-check
// The engine's registry of backing image files: which files are open, under which path, and
// under which backing id the core knows each. It opens the files a table names, refuses a name
// that would make one file two devices (or a stale file reachable), and closes files no table
// uses any more. The engine's I/O reaches the files through `files` (id -> FileBacking).
import { DmError, ERRNO } from '../../core-as/js/dmcore.js';
import { statSync } from 'node:fs';
import { FileBacking, identityOf } from './file-backing.js';

const SECTOR = 512;

/**
 * What makes a path's file the same file whatever it is called (identityOf), or null when
 * nothing is there.
 * @param {string} path
 */
function identityOfPath(path) {
  try {
    return identityOf(statSync(path));
  } catch {
    return null;
  }
}

function isFileOrBlockDevice(path) {
  try {
    const st = statSync(path);
    return st.isFile() || st.isBlockDevice();
  } catch {
    return false;
  }
}

export class BackingFiles {
  /**
   * @param {import('../../core-as/js/dmcore.js').DmCore} core
   * @param {{syncMaxBytes?: number, writeLanes: import('./write-lane.js').WriteLanes | null,
   *   locks: import('./image-locks.js').ImageLocks | null, holes: import('./file-holes.js').FileHoles | null}} fileOpts
   * how every file is opened (FileBacking.open), besides what addFile is told
   */
  constructor(core, fileOpts) {
    this.core = core;
    this.fileOpts = fileOpts;
    /** @type {(FileBacking | undefined)[]} backing id -> file */
    this.files = [];
    /** @type {Map<string, number>} path -> backing id */
    this.byPath = new Map();
  }

  /** Opens (or creates, with createBytes) an image and registers it under its path. */
  addFile(path, opts = {}) {
    const existing = this.byPath.get(path);
    if (existing !== undefined) return existing;
    const file = FileBacking.open(path, { ...opts, ...this.fileOpts });
    let id;
    try {
      id = this.core.addBacking(path, file.sectors);
    } catch (e) {
      file.close();
      throw e;
    }
    this.files[id] = file;
    this.byPath.set(path, id);
    return id;
  }

  /** The backing id a file was registered under (the core's name for it), or undefined. @param {string} path */
  backingIdOf(path) {
    return this.byPath.get(path);
  }

  /** @param {string} path */
  fileByPath(path) {
    const id = this.byPath.get(path);
    return id === undefined ? undefined : this.files[id];
  }

  /**
   * Opens every file a table names that is not open yet (the core leaves out mapped devices).
   * A name that is no file is left alone: loading the table then fails in the core with the
   * line and target named ("line 1: linear: unknown device NAME"), as on every host.
   *
   * The core knows a backing device by its name, so one file must have one name: a snapshot
   * finds its origin's other tables by device, and a file open twice under two names would be
   * two devices (origin writes would not copy out to the snapshot; allocation would be tracked
   * twice). And a name must still name the file open under it: after the file was deleted or
   * replaced (renamed over), a new table would silently get the old, unreachable file. Both
   * are refused (EINVAL), naming the file; an open file no table uses yet (`--image`) is
   * reopened instead.
   */
  openDepsOf(table, opts = {}) {
    const { names, scanned } = this.depsOf(table);
    /** Names this table uses that are open now: not to be closed for another of its names. */
    const mine = new Set();
    for (const name of names) {
      const problem = this.identityProblem(name, mine);
      if (problem) {
        // Guessed words of a table the core could not scan: its load fails with the core's message.
        if (!scanned) continue;
        throw new DmError(ERRNO.EINVAL, problem);
      }
      if (this.byPath.has(name)) {
        this.takeNewSize(name);
        mine.add(name);
        continue;
      }
      try {
        this.addFile(name, opts);
        mine.add(name);
      } catch (e) {
        if (/** @type {any} */ (e).code !== 'ENOENT') throw e;
      }
    }
  }

  /**
   * Why `name` cannot name a backing device now (see openDepsOf), or '' if it can. An open file
   * in the way that no table uses (and that is not among `mine`) is closed instead.
   * @param {string} name @param {Set<string>} mine
   */
  identityProblem(name, mine) {
    const id = this.byPath.get(name);
    const open = id === undefined ? undefined : this.files[id];
    const now = identityOfPath(name);
    if (open) {
      if (now === open.identity) return '';
      if (this.closeIfUnused(name)) return '';
      const what = now === null ? 'was deleted' : 'was replaced by another file';
      return `${name} ${what} while in use: the tables using it still use the old file, which no new table can name. ` +
        'Load tables without it and resume (or remove their devices), then name it again';
    }
    if (now === null) return '';
    for (const [other, otherId] of this.byPath) {
      if (this.files[otherId]?.identity !== now) continue;
      if (!mine.has(other) && this.closeIfUnused(other)) return '';
      return `${name} is the file already open as ${other}: name it ${other} in every table ` +
        '(a device is known by its name; under two names one file would be two devices)';
    }
    return '';
  }

  /**
   * Tells the core the size an open file has now, when it changed (an image grown with
   * truncate, a block device extended): Linux checks each table it loads against the device's
   * size at that moment, so a grown image serves a longer table without a restart. Tables
   * already live keep their length; I/O past a shrunk end fails as it did (FileBacking).
   * @param {string} name
   */
  takeNewSize(name) {
    const id = /** @type {number} */ (this.byPath.get(name));
    const file = /** @type {FileBacking} */ (this.files[id]);
    const bytes = file.sizeNow();
    if (bytes === file.bytes) return;
    if (bytes % SECTOR !== 0) throw new DmError(ERRNO.EINVAL, `${name}: size ${bytes} is not a multiple of 512 bytes`);
    this.core.resizeBacking(id, bytes / SECTOR);
    file.resized(bytes);
  }

  /** Closes the file open under `name` if no table uses it. @returns {boolean} whether it did */
  closeIfUnused(name) {
    const id = /** @type {number} */ (this.byPath.get(name));
    try {
      this.core.removeBacking(id);
    } catch (e) {
      if (e instanceof DmError && e.errno === ERRNO.EBUSY) return false;
      throw e;
    }
    this.retire(name, id);
    return true;
  }

  /**
   * The names a table needs opened. The core finds them by constructing the targets against
   * stand-in devices; when that fails, the real load will fail too, but its checks may come in
   * another order (sizes are real then) and its message is the one to show. So for a table the
   * core could not scan, every argument word naming an existing file is opened, and the load
   * decides (unused files are closed right after).
   * @returns {{names: string[], scanned: boolean}} scanned: false when the names are guessed
   */
  depsOf(table) {
    try {
      return { names: this.core.tableDeps(table), scanned: true };
    } catch (e) {
      if (!(e instanceof DmError) || e.errno !== ERRNO.EINVAL) throw e;
      const words = table.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'))
        .flatMap((l) => l.trim().split(/\s+/).slice(3));
      return { names: [...new Set(words)].filter((w) => !/^\d+$/.test(w) && isFileOrBlockDevice(w)), scanned: false };
    }
  }

  /** Closes backing files no table uses any more. */
  closeUnused() {
    for (const [path, id] of this.byPath) {
      try {
        this.core.removeBacking(id);
      } catch (e) {
        if (e instanceof DmError && e.errno === ERRNO.EBUSY) continue;
        throw e;
      }
      this.retire(path, id);
    }
  }

  /** Forgets a file the core no longer knows (removeBacking succeeded) and closes it. */
  retire(path, id) {
    // A retired table's requests may still have commands running on this file: its fd is
    // closed after the last of them (closing it now could let a new file reuse the number).
    const file = this.files[id];
    if (file && file.busy > 0) file.closeWhenIdle = true;
    else file?.close();
    this.files[id] = undefined;
    this.byPath.delete(path);
  }

  /** fdatasync on every open file. */
  async flushAll() {
    const files = /** @type {FileBacking[]} */ (this.files.filter(Boolean));
    await Promise.all(files.map((f) => new Promise((resolve, reject) => f.flush((e) => (e ? reject(e) : resolve(undefined))))));
  }

  /** Closes every file, used or not (the server is closing). */
  closeAll() {
    for (const f of this.files) f?.close();
    this.files = [];
    this.byPath.clear();
  }
}
