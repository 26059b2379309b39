// The core's mapping overhead: requests through linear and 4-way striped devices with
// in-memory backing, against a host loop that only copies the same bytes (same offsets,
// same run). The ratio is what the core adds on top of moving the data.
import { DmCore, OP } from '../core-as/js/dmcore.js';

const DISK_SECTORS = 2 * 64 * 1024 * 2; // 128 MiB per backing device
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1.5);

function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return (t ^ (t >>> 14)) >>> 0; };
}

async function setup(table, disks) {
  const core = await DmCore.load();
  const mem = new Map();
  // Pre-faulted, so neither side pays first-touch page faults inside the timed loops.
  for (const name of disks) mem.set(core.addBacking(name, DISK_SECTORS), new Uint8Array(DISK_SECTORS * 512).fill(1));
  const dev = core.createDevice('bench');
  core.loadTable(dev, table);
  core.resume(dev);
  return { core, mem, dev, size: Number(core.deviceSize(dev)) };
}

/** Runs requests of `sectors` through the core with a synchronous in-memory host. */
function runCore({ core, mem, dev, size }, op, sectors, offsets) {
  const buf = core.alloc(sectors * 512);
  let n = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < SECONDS * 1000) {
    for (let k = 0; k < 256; k++, n++) {
      core.submit(dev, op, 0, offsets[n & 4095], sectors, buf, n);
      for (const c of core.takeCommands()) {
        const disk = mem.get(c.backing);
        const view = core.bytes(c.buf, c.count * 512);
        const at = c.sector * 512;
        if (c.op === OP.READ) view.set(disk.subarray(at, at + view.length));
        else disk.set(view, at);
        core.complete(c.cmd, 0);
      }
      core.takeCompletions();
    }
    elapsed = performance.now() - t0;
  }
  core.free(buf);
  return n / (elapsed / 1000);
}

/** The same bytes moved by a plain loop over the same backing arrays (round robin), no core. */
function runCopy({ core, mem }, op, sectors, offsets) {
  const disks = [...mem.values()];
  const buf = core.alloc(sectors * 512);
  let n = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < SECONDS * 1000) {
    for (let k = 0; k < 256; k++, n++) {
      const disk = disks[n % disks.length];
      const view = core.bytes(buf, sectors * 512);
      const at = offsets[n & 4095] * 512;
      if (op === OP.READ) view.set(disk.subarray(at, at + view.length));
      else disk.set(view, at);
    }
    elapsed = performance.now() - t0;
  }
  core.free(buf);
  return n / (elapsed / 1000);
}

export async function run() {
  const linear = await setup(`0 ${DISK_SECTORS} linear d0 0`, ['d0']);
  const striped = await setup(`0 ${DISK_SECTORS * 4} striped 4 128 d0 0 d1 0 d2 0 d3 0`, ['d0', 'd1', 'd2', 'd3']);
  console.log(`core benchmark: ${SECONDS}s per figure, in-memory backing, requests at random aligned offsets`);
  console.log('size    op     device    core req/s   copy req/s   core/copy time');
  const rows = [];
  for (const sectors of [8, 256]) {
    for (const op of [OP.READ, OP.WRITE]) {
      for (const [label, s] of [['linear', linear], ['striped4', striped]]) {
        const next = rng(sectors * 31 + op);
        const offsets = Array.from({ length: 4096 }, () => (next() % (s.size / sectors)) * sectors);
        const copyOffsets = offsets.map((o) => o % (DISK_SECTORS - sectors));
        const copy = runCopy(s, op, sectors, copyOffsets);
        const core = runCore(s, op, sectors, offsets);
        const ratio = copy / core;
        rows.push({ size: sectors * 512, op: op === OP.READ ? 'read' : 'write', device: label, core, copy, ratio });
        console.log(`${String(sectors / 2).padStart(3)} KiB ${(op === OP.READ ? 'read' : 'write').padEnd(6)} ${label.padEnd(9)} ${core.toFixed(0).padStart(10)}   ${copy.toFixed(0).padStart(10)}   ${ratio.toFixed(2)}x`);
      }
    }
  }
  const worst = (bytes) => Math.max(...rows.filter((r) => r.size === bytes).map((r) => r.ratio));
  console.log(`worst ratio at 4 KiB: ${worst(4096).toFixed(2)}x (target < 2x); at 128 KiB: ${worst(131072).toFixed(2)}x (target < 1.10x)`);
  return rows;
}
