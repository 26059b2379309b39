// @ts-check
// Large reads whose bytes need not pass through core memory (Engine.submitFileRead): each is a
// region of core memory, its payload buffer. The READ commands the core emits into a region are
// held back until the end of their batch; then, when they are file reads that tile the region
// exactly, they are not executed but handed to the region's sink as file pieces (sendfile to a
// socket), else they run as usual.
import { fstatSync } from 'node:fs';
import { OP } from '../../core-as/js/dmcore.js';

/** @typedef {import('./file-backing.js').FileBacking} FileBacking */
/** @typedef {[fd: number, position: number, length: number]} FilePiece */
/**
 * Where a read's bytes are when they need not pass through core memory: the backing file
 * pieces that make up the payload, in order. The sink sends them and then calls complete(),
 * with the error if sending failed (fromFile: reading the file failed, which is logged as the
 * file's I/O error; a socket's failure is the connection's); until then the read's commands
 * count as running.
 * @typedef {(pieces: FilePiece[], complete: (error: NodeJS.ErrnoException | null, fromFile?: boolean) => void) => void} FileReadSink
 * @typedef {{tag: number, start: number, end: number, sink: FileReadSink, cmds: number[][]}} FileReadRegion
 *   cmds: [cmd, backing, position, length, buf] of each READ command into [start, end), in bytes
 */

export class FileReadRegions {
  /** @param {import('./engine.js').Engine} engine runs the commands, and counts them as running */
  constructor(engine) {
    this.engine = engine;
    /** @type {Map<number, FileReadRegion>} request tag -> its region, until its commands came */
    this.byTag = new Map();
  }

  /** Regions waiting for their commands (0: a batch's READs need no lookup). */
  get size() { return this.byTag.size; }

  /** The payload [buf, buf + count sectors) of request `tag` may go to `sink`. */
  open(tag, buf, count, sink) {
    this.byTag.set(tag, { tag, start: buf, end: buf + count * 512, sink, cmds: [] });
  }

  /** The request was refused, or completed without commands. */
  drop(tag) {
    this.byTag.delete(tag);
  }

  /**
   * Holds back the READ command at word i of the batch `c` when it reads into a region: returns
   * that region (settle() decides what becomes of its commands), else undefined.
   * @param {Uint32Array} c @param {number} i
   */
  claim(c, i) {
    const region = this.regionOf(c[i + 7], c[i + 6] * 512);
    if (region) region.cmds.push([c[i], c[i + 1], (c[i + 4] + c[i + 5] * 4294967296) * 512, c[i + 6] * 512, c[i + 7]]);
    return region;
  }

  /** The region a READ command into [buf, buf + length) belongs to, if any. */
  regionOf(buf, length) {
    for (const r of this.byTag.values()) if (buf >= r.start && buf + length <= r.end) return r;
    return undefined;
  }

  /**
   * After a batch: each region that got commands either goes to its sink (its commands are
   * file reads tiling the payload) or has them run as usual. Either way it is decided.
   * @param {FileReadRegion[]} touched
   */
  settle(touched) {
    const engine = this.engine;
    for (const region of touched) {
      this.byTag.delete(region.tag);
      const cmds = region.cmds.sort((a, b) => a[4] - b[4]);
      const pieces = this.tile(region, cmds);
      if (!pieces) {
        for (const [cmd, backing, position, length, buf] of cmds) engine.execute(cmd, backing, OP.READ, 0, position / 512, length / 512, buf);
        continue;
      }
      const files = cmds.map(([, backing]) => /** @type {FileBacking} */ (engine.files[backing]));
      for (const f of files) { engine.running++; f.busy++; }
      let completed = false;
      region.sink(pieces, (error, fromFile = false) => {
        if (completed) return;
        completed = true;
        cmds.forEach(([cmd], i) => engine.finish(cmd, files[i], error, !fromFile));
      });
    }
  }

  /**
   * The file pieces of a region whose sorted commands cover it exactly, adjacent ranges of one
   * file merged; null when they do not (a gap, an overlap, a device that is no open file) or a
   * file no longer holds its piece. An image shortened under the server then fails the read with
   * EIO through memory, where a send from the file would break off after the reply's header.
   * @param {FileReadRegion} region @param {number[][]} cmds @returns {FilePiece[] | null}
   */
  tile(region, cmds) {
    /** @type {FilePiece[]} */
    const pieces = [];
    let at = region.start;
    for (const [, backing, position, length, buf] of cmds) {
      const file = this.engine.files[backing];
      if (!file || file.closed || buf !== at) return null;
      const last = pieces[pieces.length - 1];
      if (last && last[0] === file.fd && last[1] + last[2] === position) last[2] += length;
      else pieces.push([file.fd, position, length]);
      at += length;
    }
    return at === region.end && pieces.every(inFile) ? pieces : null;
  }
}

/** Whether a file piece's bytes are all in its file now (a regular file's size; a device's is not checked). @param {FilePiece} piece */
function inFile([fd, position, length]) {
  try {
    const st = fstatSync(fd);
    return !st.isFile() || st.size >= position + length;
  } catch {
    return false;
  }
}
