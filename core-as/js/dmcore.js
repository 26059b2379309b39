// @ts-check
// The JavaScript face of the Wasm core: text in and out, errors as DmError, and one place
// that keeps typed views over the core's memory fresh across memory.grow.
// It does no I/O itself; hosts execute the commands it returns (docs/core-abi.md).

export const OP = Object.freeze({ READ: 0, WRITE: 1, FLUSH: 2, DISCARD: 3, WRITE_ZEROES: 4 });
export const OP_NAMES = ['READ', 'WRITE', 'FLUSH', 'DISCARD', 'WRITE_ZEROES'];
export const FLAG = Object.freeze({ FUA: 1 });
export const ERRNO = Object.freeze({
  EPERM: 1, ENOENT: 2, EIO: 5, ENXIO: 6, ENOMEM: 12, EBUSY: 16, EEXIST: 17, ENODEV: 19,
  EINVAL: 22, ENOSPC: 28, EOPNOTSUPP: 95,
});

/** @param {number} errno positive errno */
export function errnoName(errno) {
  for (const [name, value] of Object.entries(ERRNO)) if (value === errno) return name;
  return errno === 0 ? 'OK' : `E${errno}`;
}

export class DmError extends Error {
  /** @param {number} errno positive errno  @param {string} message */
  constructor(errno, message) {
    super(message);
    this.name = 'DmError';
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

/**
 * The core trapped (an abort, an out-of-bounds access) or overflowed the stack in the middle of
 * a call: its memory may hold half-done changes, so it is never called again. Every later call
 * throws this same fault (EIO for I/O); only a restart brings the core back.
 */
export class CoreFault extends DmError {
  /** @param {Error} cause @param {string} where the core's own abort message, if it aborted */
  constructor(cause, where) {
    super(ERRNO.EIO, `the dmkit core failed${where ? ` (${where})` : ''}: ${cause.message}; ` +
      'its state is lost, so it takes no further requests: restart to recover');
    this.name = 'CoreFault';
    this.cause = cause;
    this.where = where;
  }
}

/**
 * The core's exports, each guarded: a trap or stack overflow inside one (never a plain argument
 * error at the boundary, which leaves the core untouched) turns into a CoreFault that every later
 * call rethrows.
 * @param {Record<string, any>} raw @param {DmCore} core
 */
function guardExports(raw, core) {
  /** @type {[string, any][]} */
  const x = [];
  /** What a guarded call throws for `e`: a first trap becomes the core's fault. */
  const fail = (/** @type {unknown} */ e) => {
    if (!(e instanceof WebAssembly.RuntimeError) && !(e instanceof RangeError)) return e;
    core.fault = new CoreFault(e, e instanceof WebAssembly.RuntimeError ? abortMessage(raw, core) : '');
    core.onFault?.(core.fault);
    return core.fault;
  };
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== 'function') { x.push([name, value]); continue; }
    // One compiled wrapper per export (not one closure shared by all): the call inside stays
    // monomorphic, so V8 can inline the JS-to-Wasm call as it does without the guard.
    const params = Array.from({ length: value.length }, (_, i) => `a${i}`).join(', ');
    x.push([name, new Function('f', 'core', 'fail', `return function ${name}(${params}) {
      if (core.fault) throw core.fault;
      try { return f(${params}); } catch (err) { throw fail(err); }
    };`)(value, core, fail)]);
  }
  // Made in one go: an object given this many properties one by one turns into a dictionary,
  // and every core.x.dm_... lookup on a host's hot path would be a hash lookup.
  return Object.fromEntries(x);
}

/** Where the core aborted, read through the raw exports ("" if it did not abort). */
function abortMessage(/** @type {Record<string, any>} */ raw, /** @type {DmCore} */ core) {
  try {
    raw.dm_last_abort();
    return decoder.decode(new Uint8Array(core.memory.buffer, raw.dm_msg_ptr(), raw.dm_msg_len()));
  } catch {
    return '';
  }
}

/** @typedef {{cmd:number, backing:number, op:number, flags:number, sector:number, count:number, buf:number}} Command */
/** @typedef {{tag:number, status:number}} Completion */

const COMMAND_BYTES = 32;
const DONE_BYTES = 12;
export const COMMAND_WORDS = COMMAND_BYTES / 4;
export const DONE_WORDS = DONE_BYTES / 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class DmCore {
  /** Loads build/dmkit-core.wasm (Node) or the given bytes / URL (browser). @param {BufferSource | URL | string} [source] */
  static async load(source) {
    let bytes = source;
    if (bytes === undefined) {
      const { readFile } = await import('node:fs/promises');
      bytes = await readFile(new URL('../../build/dmkit-core.wasm', import.meta.url));
    } else if (typeof bytes === 'string' || bytes instanceof URL) {
      const res = await fetch(bytes);
      if (!res.ok) throw new Error(`cannot load the dmkit core from ${bytes}: HTTP ${res.status}`);
      bytes = await res.arrayBuffer();
    }
    const { instance } = await WebAssembly.instantiate(/** @type {BufferSource} */ (bytes), {});
    return new DmCore(instance.exports);
  }

  /** @param {any} exports */
  constructor(exports) {
    /** @type {CoreFault | null} set once the core trapped: it is not called again */
    this.fault = null;
    /** @type {((fault: CoreFault) => void) | null} told once, when the core traps */
    this.onFault = null;
    this.x = guardExports(exports, this);
    /** @type {WebAssembly.Memory} */
    this.memory = exports.memory;
    /** Records of the last takeCommandWords / takeCompletionWords (reused, grown on demand). */
    this.commandWords = new Uint32Array(COMMAND_WORDS * 64);
    this.completionWords = new Uint32Array(DONE_WORDS * 64);
    /** Index in u32 words of the boxes' state (dm_boxes_ptr): outbox, #commands, done box, #completions. */
    this.boxes = exports.dm_boxes_ptr() >>> 2;
    this.refreshViews();
  }

  /**
   * Re-creates the views when memory grew. Growing detaches the old ArrayBuffer, and its views'
   * length becomes 0: testing that is cheaper than reading memory.buffer (or even the old
   * buffer's byteLength), and a host's hot path runs this for every command.
   */
  refreshViews() {
    if (this.u8 !== undefined && this.u8.length !== 0) return;
    this.buffer = this.memory.buffer;
    this.u8 = new Uint8Array(this.buffer);
    this.dv = new DataView(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
  }

  /** A fresh view of len bytes at ptr; valid until the next call into the core. */
  bytes(ptr, len) {
    this.refreshViews();
    return new Uint8Array(this.buffer, ptr, len);
  }

  /**
   * The whole core memory as one view, valid until the next call into the core: a hot path
   * copies at a command's buf offset (`mem.set(src, buf)`) without making a view per command.
   */
  memoryBytes() {
    this.refreshViews();
    return /** @type {Uint8Array} */ (this.u8);
  }

  alloc(bytes) {
    const ptr = this.x.dm_alloc(bytes);
    if (!ptr) throw new DmError(ERRNO.ENOMEM, `the core cannot allocate ${bytes} bytes`);
    return ptr;
  }

  free(ptr) { this.x.dm_free(ptr); }

  message() {
    const len = this.x.dm_msg_len();
    return decoder.decode(this.bytes(this.x.dm_msg_ptr(), len));
  }

  /** Calls fn(ptr, len) with text copied into core memory. */
  withText(text, fn) {
    const data = encoder.encode(text);
    const ptr = this.alloc(Math.max(data.length, 1));
    try {
      this.bytes(ptr, data.length).set(data);
      return fn(ptr, data.length);
    } finally {
      this.free(ptr);
    }
  }

  /** Throws DmError for a negative result, else returns it. */
  check(result) {
    if (result < 0) throw new DmError(-result, this.message());
    return result;
  }

  patternFill(ptr, len, seed) { this.x.dm_pattern_fill(ptr, len, seed >>> 0); }
  /**
   * The host's clock in ms (it only moves forward; an earlier time is ignored). Flakey reads it,
   * delay releases the I/O it holds once it is due: take commands and completions afterwards.
   */
  setTime(ms) { this.x.dm_set_time(ms); }
  /** @returns {number} when setTime must next be called (ms), or -1 when no I/O waits for time */
  nextTimer() { return this.x.dm_next_timer(); }

  // ---- backing devices
  addBacking(name, sectors) {
    return this.check(this.withText(name, (p, n) => this.x.dm_backing_add(p, n, BigInt(sectors))));
  }
  resizeBacking(id, sectors) { this.check(this.x.dm_backing_resize(id, BigInt(sectors))); }
  removeBacking(id) { this.check(this.x.dm_backing_remove(id)); }
  /** @returns {string[]} names of host devices a table refers to */
  tableDeps(text) {
    const n = this.check(this.withText(text, (p, len) => this.x.dm_table_deps(p, len)));
    return n === 0 ? [] : this.message().split('\n');
  }

  // ---- mapped devices
  createDevice(name) { return this.check(this.withText(name, (p, n) => this.x.dm_dev_create(p, n))); }
  findDevice(name) { return this.check(this.withText(name, (p, n) => this.x.dm_dev_find(p, n))); }
  /**
   * dmsetup load. Returns true when the table is ready as the inactive table; false when its
   * targets are reading metadata first: a completion with `tag` follows (status 0, or an errno
   * with the reason in loadError(id)).
   */
  loadTable(id, text, tag = 0) {
    return this.check(this.withText(text, (p, n) => this.x.dm_dev_load(id, p, n, tag))) === 0;
  }
  loadError(id) { this.check(this.x.dm_dev_load_error(id)); return this.message(); }
  clearTable(id) { this.check(this.x.dm_dev_clear(id)); }
  suspend(id) { this.check(this.x.dm_dev_suspend(id)); }
  resume(id) { this.check(this.x.dm_dev_resume(id)); }
  removeDevice(id) { this.check(this.x.dm_dev_remove(id)); }
  openDevice(id) { return this.check(this.x.dm_dev_open(id)); }
  closeDevice(id) { return this.check(this.x.dm_dev_close(id)); }
  /** @returns {bigint} live table size in sectors */
  deviceSize(id) { return BigInt.asUintN(64, this.x.dm_dev_size(id)); }
  inflight(id) { return this.check(this.x.dm_dev_inflight(id)); }
  /** Smallest chunk (sectors) of the snapshots watching the snapshot-origin segment at `sector` (0: none); null if none is live there. */
  originChunk(id, sector) {
    const r = this.x.dm_origin_chunk(id, BigInt(sector));
    return r === -ERRNO.ENOENT ? null : this.check(r);
  }
  /** Whether a write there would need no snapshot copy now (see docs/core-abi.md); never throws for a live device. */
  originCopied(id, sector, count) { return this.check(this.x.dm_origin_copied(id, BigInt(sector), count)) === 1; }
  /**
   * Copies by the host (core-as/snapshot/thread-copies.ts) for the snapshot-origin segment at
   * `sector`: lends n COW chunks of its only snapshot (transient, or persistent: data chunks only,
   * stepping over metadata chunks); the first, or null (no such snapshot, or no room).
   */
  originLend(id, sector, n) {
    const r = this.x.dm_origin_lend(id, BigInt(sector), n);
    return r < 0n ? null : Number(r);
  }
  /** How many COW chunks originLend could lend now (0: none, or no such snapshot). */
  originLendable(id, sector) {
    const r = this.x.dm_origin_lendable(id, BigInt(sector));
    return r < 0n ? 0 : Number(r);
  }
  /** Takes back n unused lent chunks from `first` on; throws DmError if they are not the last lent. */
  originUnlend(id, sector, first, n) { this.check(this.x.dm_origin_unlend(id, BigInt(sector), BigInt(first), n)); }
  /**
   * Records the host's copy of origin chunk oldChunk into lent chunk newChunk; false if refused.
   * oldChunk -1: a lent chunk's copy failed; -2: the host's metadata commit failed (persistent).
   */
  originFold(id, sector, oldChunk, newChunk) { return this.x.dm_origin_fold(id, BigInt(sector), BigInt(oldChunk), BigInt(newChunk)) === 0; }
  /**
   * The copyable snapshot's current metadata area when its store is persistent (null otherwise):
   * exceptions per area, the area's number, entries committed in it, and a copy of its bytes.
   * @returns {{perArea: number, area: number, committed: number, bytes: Uint8Array} | null}
   */
  originArea(id, sector) {
    const chunk = this.originChunk(id, sector);
    if (!chunk) return null;
    const max = 24 + chunk * 512;
    const buf = this.alloc(max);
    try {
      const n = this.x.dm_origin_area(id, BigInt(sector), buf, max);
      if (n === -ERRNO.ENOENT) return null;
      this.check(n);
      const [perArea, area, committed] = Array.from(new BigUint64Array(this.memory.buffer, buf, 3), Number);
      return { perArea, area, committed, bytes: this.bytes(buf + 24, n - 24).slice() };
    } finally {
      this.free(buf);
    }
  }
  /**
   * Origin chunks the copyable snapshot has exceptions for (null: none such), as a copy the host
   * hands on whole (a snapshot may hold millions: no number per chunk is made).
   * @returns {BigUint64Array | null}
   */
  originExceptions(id, sector) {
    let max = 1024;
    for (;;) {
      const buf = this.alloc(max * 8);
      try {
        const n = this.x.dm_origin_exceptions(id, BigInt(sector), buf, max);
        if (n < 0) return null;
        if (n <= max) return new BigUint64Array(this.memory.buffer, buf, n).slice();
        max = n;
      } finally {
        this.free(buf);
      }
    }
  }
  /**
   * A tag of the copyable snapshot's exceptions (null: none such): it changes whenever they do,
   * so a host that kept originExceptions' chunks knows from the same tag that they still hold.
   * @returns {bigint | null}
   */
  originExceptionsTag(id, sector) {
    const tag = this.x.dm_origin_exceptions_tag(id, BigInt(sector));
    return tag < 0n ? null : tag;
  }
  table(id, inactive = false) { this.check(this.x.dm_dev_table(id, inactive ? 1 : 0)); return this.message(); }
  status(id) { this.check(this.x.dm_dev_status(id)); return this.message(); }
  /** @returns {{name:string, state:string, openCount:number, sectors:bigint, hasInactive:boolean}} */
  info(id) {
    this.check(this.x.dm_dev_info(id));
    const [name, state, open, sectors, inactive, events] = this.message().split(' ');
    return { name, state, openCount: Number(open), sectors: BigInt(sectors), hasInactive: inactive === '1', eventNr: Number(events) };
  }

  /** Device events raised so far, all devices together (read from the boxes' state: no call in). */
  eventsRaised() {
    this.refreshViews();
    return /** @type {Uint32Array} */ (this.u32)[this.boxes + 4];
  }
  /**
   * The core's kernel-log lines (DMERR: a merge that stopped on an I/O error, ...), oldest first,
   * and none left; an empty list costs no call in (the boxes' state counts them).
   * @returns {string[]}
   */
  takeLog() {
    this.refreshViews();
    if (/** @type {Uint32Array} */ (this.u32)[this.boxes + 5] === 0) return [];
    const n = this.check(this.x.dm_take_log());
    return n === 0 ? [] : this.message().split('\n');
  }
  listDevices() {
    const n = this.check(this.x.dm_dev_list());
    return n === 0 ? [] : this.message().split('\n');
  }
  sendMessage(id, sector, text) {
    this.check(this.withText(text, (p, n) => this.x.dm_dev_message(id, BigInt(sector), p, n)));
    return this.message();
  }

  // ---- I/O
  /** @returns {number} 0, or -errno if rejected at once (no completion will come) */
  submit(dev, op, flags, sector, count, buf, tag) {
    return this.x.dm_submit(dev, op, flags, BigInt(sector), count, buf, tag);
  }

  /** After a CoreFault: where the core aborted ("" if it did not abort). */
  lastAbort() {
    return this.fault?.where ?? '';
  }

  /** @returns {Command[]} */
  takeCommands() {
    const n = this.x.dm_take_commands();
    if (n === 0) return [];
    const base = this.x.dm_outbox_ptr();
    this.refreshViews();
    const dv = /** @type {DataView} */ (this.dv);
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      const p = base + i * COMMAND_BYTES;
      out[i] = {
        cmd: dv.getUint32(p, true),
        backing: dv.getUint32(p + 4, true),
        op: dv.getUint32(p + 8, true),
        flags: dv.getUint32(p + 12, true),
        sector: dv.getUint32(p + 16, true) + dv.getUint32(p + 20, true) * 2 ** 32,
        count: dv.getUint32(p + 24, true),
        buf: dv.getUint32(p + 28, true),
      };
    }
    return out;
  }

  /**
   * takeCommands without an object per command, for hosts on a hot path: copies the records
   * into `this.commandWords` (COMMAND_WORDS u32 per record, in the record's layout: cmd, backing,
   * op, flags, sector low, sector high, count, buf) and returns how many. The copy stays valid
   * while the host calls the core again (the outbox does not: a completion may refill it).
   * Reads the boxes' state first (dm_boxes_ptr), so an empty outbox costs no call into the core.
   */
  takeCommandWords() {
    return this.takeBoxWords(1, 0, COMMAND_WORDS, 'commandWords', this.x.dm_take_commands);
  }

  complete(cmd, status) { this.check(this.x.dm_complete(cmd, status)); }

  /** @returns {Completion[]} */
  takeCompletions() {
    const n = this.x.dm_take_completions();
    if (n === 0) return [];
    const base = this.x.dm_donebox_ptr();
    this.refreshViews();
    const dv = /** @type {DataView} */ (this.dv);
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      const p = base + i * DONE_BYTES;
      out[i] = { tag: dv.getUint32(p, true), status: dv.getInt32(p + 4, true) };
    }
    return out;
  }

  /**
   * takeCompletions without objects: copies the records into `this.completionWords`
   * (DONE_WORDS u32 per record: tag, status (`| 0` makes it signed), reserved) and returns how
   * many; like takeCommandWords, it calls into the core only when there is something to take.
   */
  takeCompletionWords() {
    return this.takeBoxWords(3, 2, DONE_WORDS, 'completionWords', this.x.dm_take_completions);
  }

  /**
   * Both word takes: the boxes' state (dm_boxes_ptr) holds a box's pointer at word `ptrAt` and
   * its record count at word `countAt`; an empty box is not taken. The records are copied into
   * the reused array this[into], grown when too small.
   * @param {number} countAt @param {number} ptrAt @param {number} wordsPer
   * @param {'commandWords' | 'completionWords'} into @param {() => number} take the guarded export that takes the box
   */
  takeBoxWords(countAt, ptrAt, wordsPer, into, take) {
    if (this.fault) throw this.fault; // fail closed even when nothing is read through the core
    this.refreshViews();
    const mem = /** @type {Uint32Array} */ (this.u32);
    if (mem[this.boxes + countAt] === 0) return 0;
    const n = take();
    const words = n * wordsPer;
    if (this[into].length < words) this[into] = new Uint32Array(words * 2);
    const out = this[into];
    const from = mem[this.boxes + ptrAt] >>> 2;
    for (let i = 0; i < words; i++) out[i] = mem[from + i];
    return n;
  }
}
