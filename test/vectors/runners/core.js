// @ts-check
// The `core` runner: every vector through the Wasm core with in-memory backing arrays.
// Each vector runs three times, with a fresh core each time, executing each batch of commands
// in FIFO order, in reverse, and in a seeded shuffle, so out-of-order completion is exercised.
import { readFile } from 'node:fs/promises';
import { DmCore, DmError, CoreFault, OP, OP_NAMES, FLAG, errnoName } from '../../../core-as/js/dmcore.js';
import { driveVector, pollMerge } from '../lib/drive.js';
import { formatTable } from '../lib/parse.js';
import { pattern } from '../lib/pattern.js';
import { coreLogText } from '../lib/kernel-log.js';

export const timeoutMs = 60_000;

const IO_OP = { read: OP.READ, write: OP.WRITE, flush: OP.FLUSH, discard: OP.DISCARD, zeroes: OP.WRITE_ZEROES };

/** @typedef {(cmds: import('../../../core-as/js/dmcore.js').Command[]) => import('../../../core-as/js/dmcore.js').Command[]} Order */

/** @type {Record<string, (seed: number) => Order>} */
export const ORDERS = {
  fifo: () => (cmds) => cmds,
  reverse: () => (cmds) => cmds.slice().reverse(),
  shuffle: (seed) => {
    let s = seed >>> 0;
    return (cmds) => {
      const out = cmds.slice();
      for (let i = out.length - 1; i > 0; i--) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        const j = s % (i + 1);
        [out[i], out[j]] = [out[j], out[i]];
      }
      return out;
    };
  },
};

export async function setup() {
  const bytes = await readFile(new URL('../../../build/dmkit-core.wasm', import.meta.url));
  return { module: await WebAssembly.compile(bytes) };
}

/**
 * @param {import('../lib/parse.js').Vector} vector
 * @param {{module: WebAssembly.Module}} context
 */
export async function runVector(vector, context) {
  let skippedStatements = 0;
  for (const order of Object.keys(ORDERS)) {
    const host = new CoreHost(context.module, vector, ORDERS[order](nameSeed(vector.name)));
    try {
      const { skipped } = await driveVector(vector, host, { sleep: (ms) => host.idle(ms) });
      host.finish();
      skippedStatements = skipped;
    } catch (err) {
      const where = host.core.lastAbort();
      const detail = err instanceof Error ? err.message : String(err);
      return { status: 'fail', detail: `[${order}] ${detail}${where ? ` (core aborted: ${where})` : ''}` };
    }
  }
  return { status: 'pass', skippedStatements };
}

function nameSeed(name) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** @param {unknown} err */
function outcomeOf(err) {
  // A trap is a bug, never an outcome a vector could expect (CoreFault is a DmError with EIO).
  if (err instanceof DmError && !(err instanceof CoreFault)) return { errno: err.code, message: err.message };
  throw err;
}

/** The driver's host (docs/vectors.md, "Writing a runner") over one core instance. */
export class CoreHost {
  /**
   * @param {WebAssembly.Module} module
   * @param {import('../lib/parse.js').Vector} vector
   * @param {Order} order
   */
  constructor(module, vector, order) {
    this.core = new DmCore(new WebAssembly.Instance(module, {}).exports);
    this.order = order;
    /** @type {Map<string, {id: number, bytes: Uint8Array, aligned: number|null}>} */
    this.disks = new Map();
    /** @type {Map<number, {name: string, bytes: Uint8Array, aligned: number|null}>} */
    this.disksById = new Map();
    /** @type {Map<number, ((status: number) => void) & {reject: (err: Error) => void}>} */
    this.waiting = new Map();
    this.nextTag = 1;
    this.pumpQueued = false;
    /** the last timer the clock jumped to (a timer that releases nothing must not loop) */
    this.lastTimer = -1;
    /** @type {string[]} */
    this.violations = [];
    for (const d of vector.disks) {
      const bytes = d.seed === null ? new Uint8Array(d.sectors * 512) : pattern(d.seed, d.sectors * 512);
      const id = this.core.addBacking(d.name, d.sectors);
      this.disks.set(d.name, { id, bytes, aligned: d.aligned });
      this.disksById.set(id, { name: d.name, bytes, aligned: d.aligned });
    }
  }

  devId(dev) { return this.core.findDevice(dev); }

  /** dmsetup load: the table, and for targets that read metadata first, that I/O. */
  async load(id, lines) {
    const tag = this.nextTag++;
    const text = formatTable(lines);
    if (this.core.loadTable(id, text, tag)) return null;
    const status = await this.waitTag(tag);
    return status === 0 ? null : { errno: errnoName(status), message: this.core.loadError(id) };
  }

  async create(dev, lines) {
    let id;
    try { id = this.core.createDevice(dev); } catch (err) { return outcomeOf(err); }
    try {
      const failed = await this.load(id, lines);
      if (failed) { this.core.removeDevice(id); return failed; }
      this.core.resume(id);
      this.schedulePump();
      return null;
    } catch (err) {
      this.core.removeDevice(id); // dmsetup create removes a device whose table failed
      return outcomeOf(err);
    }
  }

  async reload(dev, lines) {
    try { return await this.load(this.devId(dev), lines); } catch (err) { return outcomeOf(err); }
  }

  /** dmsetup suspend returns once the I/O in flight has drained. */
  suspend(dev) {
    try {
      const id = this.devId(dev);
      this.core.suspend(id);
      this.pumpNow();
      const left = this.core.inflight(id);
      if (left > 0) return { errno: 'EBUSY', message: `${left} request(s) still in flight after suspend` };
      return null;
    } catch (err) { return outcomeOf(err); }
  }

  resume(dev) {
    try { this.core.resume(this.devId(dev)); this.schedulePump(); return null; } catch (err) { return outcomeOf(err); }
  }

  remove(dev) {
    try { this.core.removeDevice(this.devId(dev)); return null; } catch (err) { return outcomeOf(err); }
  }

  message(dev, sector, words) {
    try { this.core.sendMessage(this.devId(dev), sector, words.join(' ')); this.schedulePump(); return null; } catch (err) { return outcomeOf(err); }
  }

  /** @param {import('../lib/drive.js').IoRequest} req */
  async io(req) {
    let id;
    try { id = this.devId(req.dev); } catch (err) { return { errno: outcomeOf(err).errno }; }
    const len = req.count * 512;
    const buf = this.core.alloc(Math.max(len, 1));
    if (req.data) this.core.bytes(buf, len).set(req.data);
    const tag = this.nextTag++;
    const r = this.core.submit(id, IO_OP[req.op], req.fua ? FLAG.FUA : 0, req.sector, req.count, buf, tag);
    if (r < 0) {
      this.core.free(buf);
      return { errno: errnoName(-r) };
    }
    const status = await this.waitTag(tag);
    const data = req.op === 'read' && status === 0 ? this.core.bytes(buf, len).slice() : undefined;
    this.core.free(buf);
    return { errno: status === 0 ? null : errnoName(status), data };
  }

  status(dev) { return this.core.status(this.devId(dev)); }
  table(dev) { return this.core.table(this.devId(dev)); }
  disk(name) { return /** @type {{bytes: Uint8Array}} */ (this.disks.get(name)).bytes.slice(); }
  setTime(ms) { this.core.setTime(ms); this.schedulePump(); }
  waitMerge(dev) { return pollMerge(dev, this, 30_000, (ms) => this.idle(ms)); }
  /** The core's kernel-log lines ("DEV: TARGET: text") as the kernel's DMERR has them: the text. */
  kernelLog() {
    this.pumpNow();
    return this.core.takeLog().map(coreLogText);
  }

  /** Lets queued pumps run (the driver's sleep): the core's background work moves on. */
  idle(ms) { return new Promise((r) => setTimeout(r, Math.min(ms, 1))); }

  /** @returns {Promise<number>} the completion status of `tag` */
  waitTag(tag) {
    return new Promise((resolve, reject) => {
      this.waiting.set(tag, Object.assign(resolve, { reject }));
      this.schedulePump();
    });
  }

  /**
   * Nothing left to execute, no timer, no device suspended, yet requests wait: they never will
   * complete. Fail them now rather than at the runner's timeout.
   */
  failStuck() {
    if (this.waiting.size === 0) return;
    for (const name of this.core.listDevices()) {
      if (this.core.info(this.core.findDevice(name)).state === 'SUSPENDED') return;
    }
    const tags = [...this.waiting.keys()];
    const rejects = [...this.waiting.values()];
    this.waiting.clear();
    const err = new Error(`request(s) with tag ${tags.join(', ')} never completed: the core has nothing left for the host to do`);
    for (const r of rejects) r.reject(err);
  }

  /** Pumps on a later turn, so I/O started together (begin/end) is all submitted first. */
  schedulePump() {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => { this.pumpQueued = false; this.pumpNow(); this.failStuck(); });
  }

  /**
   * Executes commands (in this run's order) and delivers completions until nothing is pending.
   * When requests are left waiting only for time (delay), the simulated clock jumps to the
   * core's next timer, as a real host's timer would fire (docs/core-abi.md, "Time").
   */
  pumpNow() {
    for (;;) {
      this.deliver();
      const cmds = this.core.takeCommands();
      if (cmds.length > 0) {
        for (const c of this.order(cmds)) this.execute(c);
        continue;
      }
      const next = this.waiting.size > 0 && this.core.x.dm_next_timer ? this.core.nextTimer() : -1;
      if (next < 0 || next === this.lastTimer) break;
      this.lastTimer = next;
      this.core.setTime(next);
    }
    this.deliver();
  }

  deliver() {
    for (const { tag, status } of this.core.takeCompletions()) {
      const resolve = this.waiting.get(tag);
      if (!resolve) { this.violations.push(`completion for unknown tag ${tag}`); continue; }
      this.waiting.delete(tag);
      resolve(status);
    }
  }

  /** @param {import('../../../core-as/js/dmcore.js').Command} c */
  execute(c) {
    const disk = this.disksById.get(c.backing);
    if (!disk) {
      this.violations.push(`command ${OP_NAMES[c.op]} to unknown backing id ${c.backing}`);
      this.core.complete(c.cmd, 5);
      return;
    }
    const off = c.sector * 512, len = c.count * 512;
    if (c.op !== OP.FLUSH && off + len > disk.bytes.length) {
      this.violations.push(`command ${OP_NAMES[c.op]} ${c.sector}+${c.count} past the end of ${disk.name}`);
      this.core.complete(c.cmd, 5);
      return;
    }
    if (disk.aligned && (c.op === OP.WRITE || c.op === OP.WRITE_ZEROES) &&
        (c.sector % disk.aligned !== 0 || c.count % disk.aligned !== 0)) {
      this.violations.push(`${OP_NAMES[c.op]} ${c.sector}+${c.count} on ${disk.name} is not aligned to ${disk.aligned} sectors`);
    }
    if (c.op === OP.READ) this.core.bytes(c.buf, len).set(disk.bytes.subarray(off, off + len));
    else if (c.op === OP.WRITE) disk.bytes.set(this.core.bytes(c.buf, len), off);
    else if (c.op === OP.DISCARD || c.op === OP.WRITE_ZEROES) disk.bytes.fill(0, off, off + len);
    this.core.complete(c.cmd, 0);
  }

  /** After the last statement: nothing left hanging, no rule broken along the way. */
  finish() {
    this.pumpNow();
    if (this.waiting.size > 0) throw new Error(`${this.waiting.size} request(s) never completed`);
    if (this.violations.length > 0) throw new Error(this.violations.join('; '));
  }
}
