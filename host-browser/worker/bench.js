// @ts-check
// npm run bench -- browser, the part that runs in the worker: the same I/O pattern through a
// linear device over an OPFS file (core + host loop + sync access handle) and straight on the
// file's raw sync access handle, alternating passes in the same run, same buffer, same offsets.
import { DmCore, OP } from '../../core-as/js/dmcore.js';
import { Host } from './host.js';

const FILE_BYTES = 64 << 20;

function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return (t ^ (t >>> 14)) >>> 0; };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** @param {{module: WebAssembly.Module, root: FileSystemDirectoryHandle}} w */
export async function runBench(w, { passes = 5, randomOps = 4096 } = {}) {
  const dir = await w.root.getDirectoryHandle('bench', { create: true });
  const file = await dir.getFileHandle('bench.img', { create: true });
  const handle = await file.createSyncAccessHandle();
  try {
    handle.truncate(FILE_BYTES);
    const core = new DmCore(new WebAssembly.Instance(w.module, {}).exports);
    const host = new Host(core);
    host.attach({ name: 'bench-disk', handle, bytes: FILE_BYTES, id: -1 });
    const dev = core.createDevice('bench');
    core.loadTable(dev, `0 ${FILE_BYTES / 512} linear bench-disk 0`);
    core.resume(dev);
    const buf = core.alloc(1 << 20);
    core.patternFill(buf, 1 << 20, 7);
    checkSamePath(core, host, dev, handle, buf);

    const next = rng(42);
    const offsets = Array.from({ length: randomOps }, () => (next() % (FILE_BYTES / 4096)) * 4096);
    const patterns = [
      { name: 'sequential 1 MiB', size: 1 << 20, offsets: Array.from({ length: FILE_BYTES >> 20 }, (_, i) => i << 20) },
      { name: 'random 4 KiB', size: 4096, offsets },
    ];
    const rows = [];
    for (const p of patterns) {
      for (const op of ['write', 'read']) {
        const raw = [], dm = [];
        for (let pass = 0; pass < passes; pass++) {
          // Alternating which goes first, so neither always gets the warmer cache.
          if (pass % 2 === 0) raw.push(rawPass(core, handle, buf, op, p.size, p.offsets));
          dm.push(await devicePass(core, host, dev, buf, op, p.size, p.offsets));
          if (pass % 2 === 1) raw.push(rawPass(core, handle, buf, op, p.size, p.offsets));
        }
        const bytes = p.size * p.offsets.length;
        const rawMBs = bytes / median(raw) / 1000, dmMBs = bytes / median(dm) / 1000;
        rows.push({ pattern: p.name, op, rawMBs, dmMBs, ratio: dmMBs / rawMBs });
      }
    }
    core.free(buf);
    return { fileBytes: FILE_BYTES, passes, rows };
  } finally {
    handle.close();
    await dir.removeEntry('bench.img');
  }
}

/** Before timing anything: what the device writes is what the raw handle reads, and back. */
function checkSamePath(core, host, dev, handle, buf) {
  const at = 5 << 20;
  const status = host.ioNow(dev, OP.WRITE, 0, at / 512, 2048, buf);
  if (status !== 0) throw new Error(`benchmark check: write through the device failed (${status})`);
  const raw = new Uint8Array(1 << 20);
  handle.read(raw, { at });
  const expected = core.bytes(buf, 1 << 20);
  if (raw.some((b, i) => b !== expected[i])) throw new Error('benchmark check: the raw file does not hold what the device wrote');
  raw.fill(0);
  handle.write(raw, { at });
  const back = host.ioNow(dev, OP.READ, 0, at / 512, 2048, buf);
  if (back !== 0 || core.bytes(buf, 1 << 20).some((b) => b !== 0)) throw new Error('benchmark check: the device does not read what the raw file holds');
  core.patternFill(buf, 1 << 20, 7);
}

/** @returns {number} ms */
function rawPass(core, handle, buf, op, size, offsets) {
  const t0 = performance.now();
  for (const at of offsets) {
    const view = core.bytes(buf, size);
    if (op === 'read') handle.read(view, { at }); else handle.write(view, { at });
  }
  if (op === 'write') handle.flush();
  return performance.now() - t0;
}

async function devicePass(core, host, dev, buf, op, size, offsets) {
  const t0 = performance.now();
  const code = op === 'read' ? OP.READ : OP.WRITE;
  for (const at of offsets) {
    let status = host.ioNow(dev, code, 0, at / 512, size / 512, buf);
    if (typeof status !== 'number') status = await status;
    if (status !== 0) throw new Error(`benchmark ${op} at ${at} failed with status ${status}`);
  }
  if (op === 'write') {
    const status = await host.io(dev, OP.FLUSH, 0, 0, 0, 0);
    if (status !== 0) throw new Error(`benchmark flush failed with status ${status}`);
  }
  return performance.now() - t0;
}
