// @ts-check
// Reading and writing a mapped device's sectors for the page: every byte goes through the core
// (one request at a time, at most 1 MiB each) into a buffer in the core's memory, and the
// request is recorded for the I/O log and the chunk maps.
import { DmError, OP, FLAG, ERRNO, errnoName } from '../../core-as/js/dmcore.js';

const MAX_REQUEST_SECTORS = 2048; // 1 MiB
export const MAX_READ_SECTORS = 128;

/** @typedef {{kind: 'byte', value: number} | {kind: 'text', text: string} | {kind: 'seed', seed: number}
 *   | {kind: 'zeroes'} | {kind: 'discard'}} Fill */

export class SectorIo {
  /**
   * @param {{core: import('../../core-as/js/dmcore.js').DmCore, host: import('./host.js').Host,
   *   tracker: import('./chunk-tracker.js').ChunkTracker, log: import('./io-log.js').IoLog}} deps
   */
  constructor({ core, host, tracker, log }) {
    this.core = core;
    this.host = host;
    this.tracker = tracker;
    this.log = log;
  }

  /** One request through the core, logged; throws DmError for a failed one. */
  async request(name, op, flags, sector, count, buf) {
    const dev = this.core.findDevice(name);
    this.tracker.request = { dev: name, sector, count, buf, bytes: buf ? count * 512 : 0 };
    this.log.begin('request', name, ['READ', 'WRITE', 'FLUSH', 'DISCARD', 'WRITE_ZEROES'][op] + (flags & FLAG.FUA ? '+FUA' : ''), sector, count);
    let status;
    try {
      status = await this.host.ioNow(dev, op, flags, sector, count, buf);
    } catch (e) {
      this.log.end(e instanceof DmError ? e.code : 'failed');
      throw e;
    } finally {
      this.tracker.request = null;
    }
    this.log.end(status);
    if (!this.host.pumping) this.tracker.idle();
    if (status !== 0) throw new DmError(status, `${name}: ${['read', 'write', 'flush', 'discard', 'write zeroes'][op]} of sectors ${sector}+${count} failed: ${errnoName(status)}`);
  }

  /** @returns {Promise<Uint8Array>} */
  async read(name, sector, count) {
    if (!(count >= 1 && count <= MAX_READ_SECTORS)) throw new DmError(ERRNO.EINVAL, `read between 1 and ${MAX_READ_SECTORS} sectors at a time, not ${count}`);
    const buf = this.core.alloc(count * 512);
    try {
      await this.request(name, OP.READ, 0, sector, count, buf);
      return this.core.bytes(buf, count * 512).slice();
    } finally {
      this.core.free(buf);
    }
  }

  /** Writes `count` sectors from `sector` with a fill, in requests of at most 1 MiB. @param {Fill} fill */
  async write(name, sector, count, fill, fua = false) {
    if (!(count >= 1)) throw new DmError(ERRNO.EINVAL, `the sector count must be at least 1, not ${count}`);
    if (fill.kind === 'discard' || fill.kind === 'zeroes') {
      const op = fill.kind === 'discard' ? OP.DISCARD : OP.WRITE_ZEROES;
      for (let done = 0; done < count; done += MAX_REQUEST_SECTORS) {
        await this.request(name, op, fua && op === OP.WRITE_ZEROES ? FLAG.FUA : 0, sector + done, Math.min(MAX_REQUEST_SECTORS, count - done), 0);
      }
      return;
    }
    const chunk = Math.min(count, MAX_REQUEST_SECTORS);
    const buf = this.core.alloc(chunk * 512);
    try {
      for (let done = 0; done < count; done += MAX_REQUEST_SECTORS) {
        const n = Math.min(MAX_REQUEST_SECTORS, count - done);
        this.fillBuffer(buf, n * 512, fill, done * 512);
        await this.request(name, OP.WRITE, fua ? FLAG.FUA : 0, sector + done, n, buf);
      }
    } finally {
      this.core.free(buf);
    }
  }

  /** Fills len bytes at buf; `offset` is where in the whole write they start (patterns continue). */
  fillBuffer(buf, len, fill, offset) {
    if (fill.kind === 'seed') {
      // The golden pattern of the whole range (docs/vectors.md): word k of pattern(S) is the
      // first word of pattern(S + k * 0x6D2B79F5), so a later piece starts from a shifted seed.
      const words = offset / 4;
      this.core.patternFill(buf, len, (fill.seed + Math.imul(words, 0x6d2b79f5)) >>> 0);
      return;
    }
    const view = this.core.bytes(buf, len);
    if (fill.kind === 'byte') { view.fill(fill.value & 255); return; }
    const text = new TextEncoder().encode(fill.text);
    if (text.length === 0) throw new DmError(ERRNO.EINVAL, 'the text to repeat is empty');
    for (let i = 0; i < len; i++) view[i] = text[(offset + i) % text.length];
  }

  /**
   * Writes a file's bytes from `sector` on. A file whose size is not a multiple of 512 leaves
   * the rest of its last sector as it was (read, overlay, write back).
   * @param {Blob} file
   */
  async upload(name, sector, file) {
    if (file.size === 0) throw new DmError(ERRNO.EINVAL, 'the file is empty');
    const reader = new FileReaderSync();
    const whole = Math.floor(file.size / 512) * 512;
    const buf = this.core.alloc(MAX_REQUEST_SECTORS * 512);
    try {
      for (let at = 0; at < whole; at += MAX_REQUEST_SECTORS * 512) {
        const len = Math.min(MAX_REQUEST_SECTORS * 512, whole - at);
        this.core.bytes(buf, len).set(new Uint8Array(reader.readAsArrayBuffer(file.slice(at, at + len))));
        await this.request(name, OP.WRITE, 0, sector + at / 512, len / 512, buf);
      }
      if (whole < file.size) {
        const tail = new Uint8Array(reader.readAsArrayBuffer(file.slice(whole)));
        const last = sector + whole / 512;
        await this.request(name, OP.READ, 0, last, 1, buf);
        this.core.bytes(buf, tail.length).set(tail);
        await this.request(name, OP.WRITE, 0, last, 1, buf);
      }
    } finally {
      this.core.free(buf);
    }
    return Math.ceil(file.size / 512);
  }

  async flush(name) {
    await this.request(name, OP.FLUSH, 0, 0, 0, 0);
  }
}
