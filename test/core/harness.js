// @ts-check
// A small synchronous host for unit tests: in-memory backing devices, commands executed
// when the test says so (in any order), completions collected by tag.
import { DmCore, OP } from '../../core-as/js/dmcore.js';

export async function newHarness() {
  const core = await DmCore.load();
  /** @type {Map<number, Uint8Array>} */
  const disks = new Map();
  /** @type {Map<number, number>} */
  const done = new Map();
  let nextTag = 1;
  const h = {
    core,
    disks,
    done,
    /** @param {string} name @param {number} sectors */
    disk(name, sectors) {
      const id = core.addBacking(name, sectors);
      disks.set(id, new Uint8Array(sectors * 512));
      return id;
    },
    /** create + load + resume, as `dmsetup create NAME --table` */
    device(name, table) {
      const id = core.createDevice(name);
      h.load(id, table);
      core.resume(id);
      return id;
    },
    /** dmsetup load, running the metadata I/O of targets that need it; throws on failure. */
    load(id, table) {
      const tag = nextTag++;
      if (core.loadTable(id, table, tag)) return;
      h.drain();
      const status = done.get(tag);
      if (status === undefined) throw new Error('table load did not finish');
      if (status !== 0) throw Object.assign(new Error(core.loadError(id)), { errno: status });
    },
    /** Submits and returns the tag (throws if rejected at once). */
    submit(dev, op, sector, count, buf = 0, flags = 0) {
      const tag = nextTag++;
      const r = core.submit(dev, op, flags, sector, count, buf, tag);
      if (r < 0) throw Object.assign(new Error(core.message()), { errno: -r });
      return tag;
    },
    /** Executes one command against the in-memory disks. */
    execute(c, status = 0) {
      const disk = /** @type {Uint8Array} */ (disks.get(c.backing));
      const off = c.sector * 512, len = c.count * 512;
      if (status === 0) {
        if (c.op === OP.READ) core.bytes(c.buf, len).set(disk.subarray(off, off + len));
        else if (c.op === OP.WRITE) disk.set(core.bytes(c.buf, len), off);
        else if (c.op === OP.DISCARD || c.op === OP.WRITE_ZEROES) disk.fill(0, off, off + len);
      }
      core.complete(c.cmd, status);
    },
    /** Runs until no command is pending, executing in the order given by `order` (default FIFO). */
    drain(order = (cmds) => cmds) {
      for (;;) {
        const cmds = core.takeCommands();
        h.collect();
        if (cmds.length === 0) return;
        for (const c of order(cmds)) h.execute(c);
        h.collect();
      }
    },
    /** Sets the core's clock and runs what it released. */
    setTime(ms) {
      core.setTime(ms);
      h.drain();
    },
    /**
     * drain(), and while I/O waits for time (delay), advance the simulated clock to the next
     * deadline and drain again: what a host loop does once nothing else is pending.
     */
    settle(order) {
      h.drain(order);
      for (let t = core.nextTimer(); t >= 0; t = core.nextTimer()) {
        core.setTime(t);
        h.drain(order);
      }
    },
    collect() {
      for (const c of core.takeCompletions()) done.set(c.tag, c.status);
    },
    /** Writes bytes into a fresh core buffer and returns its pointer. */
    buffer(bytesOrLength) {
      const len = typeof bytesOrLength === 'number' ? bytesOrLength : bytesOrLength.length;
      const ptr = core.alloc(Math.max(len, 1));
      if (typeof bytesOrLength !== 'number') core.bytes(ptr, len).set(bytesOrLength);
      else core.bytes(ptr, len).fill(0xee);
      return ptr;
    },
    /** Full read through a device: returns the bytes and status. */
    read(dev, sector, count) {
      const buf = h.buffer(count * 512);
      const tag = h.submit(dev, OP.READ, sector, count, buf);
      h.settle();
      return { status: done.get(tag), data: core.bytes(buf, count * 512).slice() };
    },
    write(dev, sector, data, flags = 0) {
      const buf = h.buffer(data);
      const tag = h.submit(dev, OP.WRITE, sector, data.length / 512, buf, flags);
      h.settle();
      return done.get(tag);
    },
  };
  return h;
}

/** count sectors of bytes where each sector is filled with its own (sector + salt) & 255 */
export function sectorBytes(count, salt = 1) {
  const out = new Uint8Array(count * 512);
  for (let s = 0; s < count; s++) out.fill((s + salt) & 255, s * 512, (s + 1) * 512);
  return out;
}

/** The chunks of originExceptions (a BigUint64Array, or null), as sorted numbers (null stays null). */
export function chunkList(held) {
  return held && Array.from(held, Number).sort((a, b) => a - b);
}
