// @ts-check
// The golden vectors (test/vectors/cases, docs/vectors.md) through the real browser path: each
// vector gets a fresh core instance and its disks as files in OPFS (vectors/<name>/), every
// command runs on a sync access handle through the same host loop the page uses, and the
// shared driver (test/vectors/lib/drive.js) decides what passed.
import { DmCore, DmError, CoreFault, OP, FLAG, OP_NAMES, errnoName } from '../../core-as/js/dmcore.js';
import { parseVector, formatTable } from '../../test/vectors/lib/parse.js';
import { driveVector, pollMerge } from '../../test/vectors/lib/drive.js';
import { pattern } from '../../test/vectors/lib/pattern.js';
import { sha256Hex } from '../../test/vectors/lib/hash.js';
import { coreLogText } from '../../test/vectors/lib/kernel-log.js';
import { Host } from './host.js';

const IO_OP = { read: OP.READ, write: OP.WRITE, flush: OP.FLUSH, discard: OP.DISCARD, zeroes: OP.WRITE_ZEROES };

/**
 * @param {WebAssembly.Module} module
 * @param {FileSystemDirectoryHandle} root
 * @param {Array<{name: string, text: string}>} vectors
 * @param {(result: {name: string, status: string, detail: string, skippedStatements: number}) => void} onResult
 */
export async function runVectors(module, root, vectors, onResult) {
  const results = [];
  const top = await root.getDirectoryHandle('vectors', { create: true });
  for (const { name, text } of vectors) {
    let result;
    try {
      const vector = parseVector(text, `${name}.vec`);
      const host = await OpfsVectorHost.open(module, top, vector);
      try {
        const { skipped } = await driveVector(vector, host, { sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 5))) });
        host.finish();
        result = { name, status: 'pass', detail: '', skippedStatements: skipped };
      } catch (e) {
        const where = host.core.lastAbort();
        result = { name, status: 'fail', detail: `${e instanceof Error ? e.message : e}${where ? ` (core aborted: ${where})` : ''}`, skippedStatements: 0 };
      } finally {
        await host.close();
      }
    } catch (e) {
      result = { name, status: 'fail', detail: e instanceof Error ? e.message : String(e), skippedStatements: 0 };
    }
    results.push(result);
    onResult(result);
  }
  return results;
}

function outcomeOf(err) {
  // A trap is a bug, never an outcome a vector could expect (CoreFault is a DmError with EIO).
  if (err instanceof DmError && !(err instanceof CoreFault)) return { errno: err.code, message: err.message };
  throw err;
}

/** The driver's host (docs/vectors.md, "Writing a runner") over OPFS files. */
class OpfsVectorHost {
  static async open(module, top, vector) {
    try { await top.removeEntry(vector.name, { recursive: true }); } catch { /* not there: fine */ }
    const dir = await top.getDirectoryHandle(vector.name, { create: true });
    const self = new OpfsVectorHost(module, dir, top, vector.name);
    for (const d of vector.disks) {
      const file = await dir.getFileHandle(d.name, { create: true });
      const handle = await file.createSyncAccessHandle();
      const bytes = d.sectors * 512;
      handle.truncate(bytes);
      if (d.seed !== null) handle.write(pattern(d.seed, bytes), { at: 0 });
      handle.flush();
      const disk = { name: d.name, handle, bytes, id: -1, aligned: d.aligned };
      self.host.attach(disk);
      self.disks.set(d.name, disk);
    }
    return self;
  }

  constructor(module, dir, top, name) {
    this.core = new DmCore(new WebAssembly.Instance(module, {}).exports);
    this.host = new Host(this.core, { clock: 'simulated', batchSubmits: true });
    this.dir = dir;
    this.top = top;
    this.name = name;
    /** @type {Map<string, any>} */
    this.disks = new Map();
    /** @type {string[]} */
    this.violations = [];
    this.host.observer = {
      issued: (c, disk) => {
        if (!disk) { this.violations.push(`command ${OP_NAMES[c.op]} to unknown backing id ${c.backing}`); return; }
        if (disk.aligned && (c.op === OP.WRITE || c.op === OP.WRITE_ZEROES) && (c.sector % disk.aligned !== 0 || c.count % disk.aligned !== 0)) {
          this.violations.push(`${OP_NAMES[c.op]} ${c.sector}+${c.count} on ${disk.name} is not aligned to ${disk.aligned} sectors`);
        }
      },
    };
  }

  devId(dev) { return this.core.findDevice(dev); }

  async load(id, lines) {
    try { await this.host.loadTable(id, formatTable(lines)); return null; } catch (e) { return outcomeOf(e); }
  }

  async create(dev, lines) {
    let id;
    try { id = this.core.createDevice(dev); } catch (e) { return outcomeOf(e); }
    const failed = await this.load(id, lines);
    if (failed) { this.core.removeDevice(id); return failed; }
    try { this.core.resume(id); this.host.pump(); return null; } catch (e) { this.core.removeDevice(id); return outcomeOf(e); }
  }

  async reload(dev, lines) {
    try { return await this.load(this.devId(dev), lines); } catch (e) { return outcomeOf(e); }
  }

  suspend(dev) {
    try {
      const id = this.devId(dev);
      this.core.suspend(id);
      this.host.pump();
      const left = this.core.inflight(id);
      return left > 0 ? { errno: 'EBUSY', message: `${left} request(s) still in flight after suspend` } : null;
    } catch (e) { return outcomeOf(e); }
  }

  /** The core's kernel-log lines since the last call, as Linux's DMERR has them: the text. */
  kernelLog() {
    return this.host.kernelLines.splice(0).map(coreLogText);
  }

  resume(dev) { try { this.core.resume(this.devId(dev)); this.host.pump(); return null; } catch (e) { return outcomeOf(e); } }
  remove(dev) { try { this.core.removeDevice(this.devId(dev)); return null; } catch (e) { return outcomeOf(e); } }
  message(dev, sector, words) {
    try { this.core.sendMessage(this.devId(dev), sector, words.join(' ')); this.host.pump(); return null; } catch (e) { return outcomeOf(e); }
  }

  /** @param {import('../../test/vectors/lib/drive.js').IoRequest} req */
  async io(req) {
    const len = req.count * 512;
    const buf = this.core.alloc(Math.max(len, 1));
    try {
      if (req.data) this.core.bytes(buf, len).set(req.data);
      let status;
      try {
        status = await this.host.io(this.devId(req.dev), IO_OP[req.op], req.fua ? FLAG.FUA : 0, req.sector, req.count, buf);
      } catch (e) {
        return { errno: outcomeOf(e).errno };
      }
      const data = req.op === 'read' && status === 0 ? this.core.bytes(buf, len).slice() : undefined;
      return { errno: status === 0 ? null : errnoName(status), data };
    } finally {
      this.core.free(buf);
    }
  }

  status(dev) { return this.core.status(this.devId(dev)); }
  table(dev) { return this.core.table(this.devId(dev)); }

  /** The whole disk as the file holds it, read straight from OPFS. */
  async disk(name) {
    const d = this.disks.get(name);
    const bytes = new Uint8Array(d.bytes);
    d.handle.read(bytes, { at: 0 });
    return { sha256: await sha256Hex(bytes) };
  }

  setTime(ms) { this.host.setTime(ms); }
  waitMerge(dev) { return pollMerge(dev, this, 30_000, (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 5)))); }

  finish() {
    this.host.pump();
    if (this.host.waiting.size > 0) throw new Error(`${this.host.waiting.size} request(s) never completed`);
    const broken = [...this.host.violations, ...this.violations];
    if (broken.length > 0) throw new Error(broken.join('; '));
  }

  async close() {
    for (const d of this.disks.values()) d.handle.close();
    await this.top.removeEntry(this.name, { recursive: true });
  }
}
