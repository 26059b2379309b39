// @ts-check
// The dedicated worker that is dmkit in the browser: it owns the core, every OPFS sync access
// handle and the mapped devices. The page sends calls ({id, method, args}) and gets one answer
// each ({id, result} or {id, error}); calls run one after another, so each request's commands
// belong to it in the I/O log. Progress (chunk maps, log entries) is pushed as events.
import { DmCore, DmError } from '../../core-as/js/dmcore.js';
import { OpfsDisks } from './opfs-disks.js';
import { Host } from './host.js';
import { ChunkTracker } from './chunk-tracker.js';
import { IoLog } from './io-log.js';
import { Devices } from './devices.js';
import { SectorIo } from './sector-io.js';
import { Transfer } from './transfer.js';
import { runVectors } from './vectors.js';
import { runBench } from './bench.js';

/** @type {Promise<any>} */
let ready;
let lastProgress = 0;

async function boot() {
  const root = await navigator.storage.getDirectory();
  const module = await WebAssembly.compileStreaming(fetch(new URL('dmkit-core.wasm', self.location.href)));
  const core = new DmCore(new WebAssembly.Instance(module, {}).exports);
  const disks = await OpfsDisks.open(root);
  const host = new Host(core);
  const notices = [];
  for (const d of disks.list()) {
    try { host.attach(d); } catch (e) { notices.push(`backing device ${d.name} could not be registered: ${e instanceof Error ? e.message : e}`); }
  }
  const tracker = new ChunkTracker(disks);
  const log = new IoLog(tracker);
  host.observer = {
    issued: (c, d) => { tracker.issued(c, d); log.issued(c, d); },
    done: (c, d, s) => { log.done(c, d, s); tracker.done(c, d, s); },
    batch: () => progress(false),
    kernelLog: (line) => { log.kernel(line); progress(false); },
  };
  const devices = await Devices.open(root, { core, host, disks, module, log, tracker });
  notices.push(...devices.notices);
  const sectors = new SectorIo({ core, host, tracker, log });
  const transfer = new Transfer({ root, core, disks, host, sectors });
  tracker.sync(devices.list());
  return { root, module, core, disks, host, tracker, log, devices, sectors, transfer, notices };
}

/** Pushes changed chunk maps and finished log entries (at most every 50 ms unless forced). */
function progress(force) {
  const now = performance.now();
  if (!force && now - lastProgress < 50) return;
  lastProgress = now;
  ready.then((w) => {
    const maps = w.tracker.take();
    const entries = w.log.take();
    const current = w.log.current;
    if (maps.length || entries.length || current) self.postMessage({ event: 'progress', maps, entries, current });
  });
}

function usedBy(w, diskName) {
  return w.devices.list().filter((d) => [d.table, d.inactiveTable].some((t) =>
    t.split('\n').some((line) => line.trim().split(/\s+/).slice(3).includes(diskName)))).map((d) => d.name);
}

function snapshotOf(w) {
  return {
    disks: w.disks.list().map((d) => ({ name: d.name, bytes: d.bytes, usedBy: usedBy(w, d.name) })),
    devices: w.devices.list(),
    notices: w.notices,
    stepDelayMs: w.host.stepDelayMs,
  };
}

const METHODS = {
  state: async (w) => {
    w.log.take(); // the page gets them all here, not again as progress
    return { ...snapshotOf(w), maps: w.tracker.take(true), log: w.log.entries };
  },
  createDisk: async (w, { name, bytes }) => { w.host.attach(await w.disks.create(name, bytes)); },
  resizeDisk: async (w, { name, bytes }) => {
    const disk = w.disks.get(name);
    const users = usedBy(w, name);
    if (bytes < disk.bytes && users.length) {
      throw new DmError(16, `backing device ${name} is used by ${users.join(', ')}: remove those devices before shrinking it`);
    }
    w.disks.resize(name, bytes);
    w.core.resizeBacking(disk.id, bytes / 512);
  },
  removeDisk: async (w, { name }) => {
    w.host.detach(w.disks.get(name));
    await w.disks.remove(name);
  },
  importDisk: async (w, { name, file }) => w.transfer.importDisk(name, file),
  exportDisk: async (w, { name }) => w.transfer.exportDisk(name),
  exportDevice: async (w, { name }) => w.transfer.exportDevice(name),
  validate: async (w, { name, table, mode }) => w.devices.validate(name, table, mode),
  create: async (w, { name, table }) => w.devices.create(name, table),
  reload: async (w, { name, table }) => w.devices.reload(name, table),
  suspend: async (w, { name }) => w.devices.suspend(name),
  resume: async (w, { name }) => w.devices.resume(name),
  remove: async (w, { name }) => w.devices.remove(name),
  clear: async (w, { name }) => w.devices.clear(name),
  message: async (w, { name, sector, text }) => w.devices.message(name, sector, text),
  read: async (w, { name, sector, count }) => w.sectors.read(name, sector, count),
  write: async (w, { name, sector, count, fill, fua }) => w.sectors.write(name, sector, count, fill, fua),
  upload: async (w, { name, sector, file }) => w.sectors.upload(name, sector, file),
  flush: async (w, { name }) => w.sectors.flush(name),
  setStepDelay: async (w, { ms }) => { w.host.stepDelayMs = Math.max(0, Math.min(2000, Number(ms) || 0)); },
  runVectors: async (w, { vectors }) => runVectors(w.module, w.root, vectors, (p) => self.postMessage({ event: 'vector', ...p })),
  bench: async (w, opts) => runBench(w, opts),
};

let queue = Promise.resolve();

self.onmessage = (ev) => {
  const { id, method, args } = ev.data;
  queue = queue.then(async () => {
    try {
      const w = await ready;
      const fn = METHODS[method];
      if (!fn) throw new Error(`unknown call ${method}`);
      w.core.setTime(performance.now());
      const result = await fn(w, args ?? {});
      if (method !== 'state' && method !== 'validate') {
        w.tracker.sync(w.devices.list());
        self.postMessage({ event: 'changed', ...snapshotOf(w) });
      }
      progress(true);
      self.postMessage({ id, result }, result instanceof Uint8Array ? [result.buffer] : []);
    } catch (e) {
      const error = e instanceof Error ? { message: e.message, code: /** @type {any} */ (e).code ?? e.name } : { message: String(e), code: 'Error' };
      self.postMessage({ id, error });
    }
  });
};

ready = boot();
ready.then(() => self.postMessage({ event: 'ready' }), (e) => self.postMessage({ event: 'failed', message: `dmkit could not start: ${e && e.message || e}` }));
