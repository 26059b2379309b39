// @ts-check
// Kill-point runs for the stateful targets: a real `dmkit serve` gets random verified writes on
// every export, is killed with SIGKILL at a random moment, and is started again on the same
// files. Then: the COW devices must load (the server starts, and an independent reader parses
// them), and every sector of every export must hold what View.check allows (history.js):
// everything acknowledged before the last completed FLUSH, and in fact everything acknowledged.
// What the devices hold then becomes the starting point of the next cycle.
//
// Setups: one snapshot (P or PO) or two of one origin (P and PO), with origin and snapshots
// written at once; and a snapshot-merge killed while it merges, with writes to the merging
// device, run to completion at the end and checked on the origin image itself.
//
// With powerCut, the power goes too: the origin image and the COW files live on a disk with a
// volatile write cache (faulty-disk.js, volatile), and each kill is followed by a power cut of
// that disk (a seeded random half of what no fsync made durable is lost, page by page), an
// unmount and a fresh mount over what survived. Only the 'flush' level holds then: everything
// acknowledged before the last completed FLUSH (or with FUA) is there; what was merely
// acknowledged may be gone. A snapshot's view allows only its base and its own writes, so a
// snapshot showing origin data written after it was taken (an origin write made durable before
// the exception that protects it) fails the check like any other wrong sector.
import { writeFileSync, readFileSync, openSync, ftruncateSync, closeSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, tempDir, threadCounters } from '../../nbd/helpers.js';
import { readCow } from '../../../host-nbd/snapshot/cow-reader.js';
import { NbdClient } from './nbd-client.js';
import { View } from './history.js';
import { sectorsOf, decodeSector, SECTOR } from './pattern.js';
import { Workload, readAll, rng } from './workload.js';
import { control, snapshotStatus } from './control.js';
import { mountFaultyDisk } from './faulty-disk.js';

/**
 * Device and COW sizes and the shape of the writes. Origin-only runs get a larger origin with
 * writes of one chunk, so that first writes (copies and commits) go on through every cycle
 * instead of ending within the first.
 * @typedef {{deviceBytes: number, sectors: number, cowBytes: number,
 *   load: {maxSectors: number, fuaShare: number, flushShare: number}}} Geometry
 */
/** @param {boolean} originOnly @param {number} [maxSectors] the largest write instead @returns {Geometry} */
function geometryOf(originOnly, maxSectors) {
  const deviceBytes = (originOnly ? 64 : 8) << 20;
  // FUA writes go through the core, which takes the threads' chunks back until the origin has
  // been quiet for 50 ms: origin-only runs send none, and fewer FLUSHes.
  const load = originOnly ? { maxSectors: 8, fuaShare: 0, flushShare: 0.01 } : { maxSectors: 64, fuaShare: 0.05, flushShare: 0.04 };
  if (maxSectors) load.maxSectors = maxSectors;
  return { deviceBytes, sectors: deviceBytes / SECTOR, cowBytes: (originOnly ? 80 : 12) << 20, load };
}

/**
 * @typedef {object} CrashConfig
 * @property {'P' | 'PO' | 'P+PO' | 'merge'} setup
 * @property {number} cycles      kill points
 * @property {number} seed
 * @property {number} [chunk]     chunk size in sectors (default: chosen by the seed)
 * @property {number} [slowFlush] ms each COW FLUSH is held (default: chosen by the seed)
 * @property {boolean} [powerCut] the files live on a volatile disk whose power is cut at each kill
 * @property {number} [maxSectors] the largest write, in sectors (default 8 origin-only, else 64;
 *   128 or more lets the receive threads splice payloads of 64 KiB and up)
 * @property {string[]} [serveArgs] more `dmkit serve` arguments (e.g. --loop-receive)
 * @property {boolean} [originOnly] snapshot setups: write only the origin (snapshots are read
 *   back after each kill), with no delay device under the COW: then the receive threads make
 *   the origin's first writes and commit P's metadata themselves (docs/nbd.md, "First writes by
 *   the threads"); writes to a snapshot device keep its origin's first writes on the core
 * @property {(line: string) => void} [log]
 */

/**
 * What a run's cycles share: the server's dir, where the test creates and reads the backing
 * files (`files`) and the path the server is given for them (`served`: the same, or the
 * volatile disk's mount over `files`), the level every check holds the devices to, and the
 * volatile disk whose power is cut (null: kills only).
 * @typedef {{dir: string, files: string, served: string, serveArgs: string[], level: 'flush' | 'acked',
 *   power: PowerDisk | null, geo: Geometry}} Run
 */

/** A volatile disk whose power is cut after a kill, then mounted again over what survived. */
class PowerDisk {
  /** @param {string} dir */
  static async mount(dir) {
    return new PowerDisk(dir, await mountFaultyDisk(dir, { volatile: true }));
  }

  /** @param {string} dir @param {import('./faulty-disk.js').FaultyDisk} disk */
  constructor(dir, disk) {
    this.dir = dir;
    this.disk = disk;
  }

  /** Cuts the power (seed from `random`), unmounts, mounts again; counts it in `report`. */
  async cut(random, report, log) {
    const seed = Math.floor(random() * 2 ** 31);
    const cut = this.disk.powerCut(seed);
    report.cuts++;
    report.pagesKept += cut.kept;
    report.pagesDropped += cut.dropped;
    log(`power cut (seed ${seed}): ${cut.kept} dirty pages kept, ${cut.dropped} dropped ${JSON.stringify(cut.files)}`);
    await this.disk.unmount();
    this.disk = await mountFaultyDisk(this.dir, { volatile: true });
  }
}

/** @param {string} path */
function sparse(path, bytes) {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
}

/** Reads a COW device with the independent reader (throws what it refuses). */
export async function inspectCow(path) {
  const f = await open(path, 'r');
  try {
    const { size } = await f.stat();
    return await readCow(async (pos, len) => {
      const b = new Uint8Array(len);
      await f.read(b, 0, len, pos);
      return b;
    }, size);
  } finally {
    await f.close();
  }
}

/**
 * The write each sector holds, or throws listing what the view does not allow (and, for a
 * write another device of the run was sent, which: a snapshot holding its origin's write).
 * @param {View} view @param {Buffer} data @param {'flush' | 'acked'} level @param {View[]} [others]
 */
function checkedContent(view, data, level, others = []) {
  const problems = view.problems(data, 0, level, 10).map(({ sector, holds, text }) => {
    const owner = holds !== null && others.find((v) => v !== view && (v.writes.get(sector) ?? []).some((w) => w.id === holds));
    return owner ? `${text} [write ${holds} was sent to ${owner.name}]` : text;
  });
  if (problems.length) throw new Error(`after a kill, ${view.name} does not hold what was promised (level ${level}):\n  ${problems.join('\n  ')}`);
  const ids = new Uint32Array(view.sectors);
  for (let s = 0; s < view.sectors; s++) ids[s] = /** @type {number} */ (decodeSector(data, s * SECTOR, s));
  return ids;
}

/** Checks at 'flush', and at the run's level; returns the write each sector holds. @param {Run} run */
function settledContent(run, view, data, others = []) {
  const ids = checkedContent(view, data, 'flush', others);
  return run.level === 'acked' ? checkedContent(view, data, 'acked', others) : ids;
}

/** @param {CrashConfig} cfg */
export async function runCrashCycles(cfg) {
  const random = rng(cfg.seed);
  const log = cfg.log ?? (() => {});
  // A merge needs many exceptions to still be merging at the kills: small chunks there.
  const sizes = cfg.setup === 'merge' ? [8, 16] : [8, 16, 32, 128];
  const chunk = cfg.chunk ?? (cfg.originOnly ? 8 : sizes[Math.floor(random() * sizes.length)]);
  const dir = tempDir('dmkit-crash-');
  const report = {
    setup: cfg.setup, chunk, seed: cfg.seed, slowFlushMs: 0, kills: 0, killsDuringMerge: 0, writesAcked: 0, flushes: 0, lostInFlight: 0,
    ...(cfg.powerCut ? { cuts: 0, pagesKept: 0, pagesDropped: 0, threadWrites: 0, splicedWrites: 0, threadCopies: 0 } : {}),
    ...(cfg.serveArgs?.length ? { serveArgs: cfg.serveArgs.join(' ') } : {}),
  };
  /** @type {Run} */
  const run = { dir, files: dir, served: dir, serveArgs: cfg.serveArgs ?? [], level: cfg.powerCut ? 'flush' : 'acked', power: null, geo: geometryOf(!!cfg.originOnly, cfg.maxSectors) };
  try {
    if (cfg.powerCut) {
      run.power = await PowerDisk.mount(join(dir, 'disk'));
      run.files = run.power.disk.source;
      run.served = run.power.disk.mount;
    }
    writeFileSync(join(run.files, 'origin.img'), sectorsOf(0, run.geo.sectors, 0));
    if (cfg.setup === 'merge') await mergeRun(cfg, run, chunk, random, report, log);
    else await snapshotRun(cfg, run, chunk, random, report, log);
  } finally {
    await run.power?.disk.unmount();
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

/**
 * The devices of a snapshot setup and the table of each. With slowFlush (ms), each COW device
 * is reached through a `delay` device that holds FLUSHes that long: a slow disk, which widens
 * the window between a copy and the metadata commit that makes it count, where a kill hurts
 * an implementation that releases writes too early. Helper devices are not exported. `cow` is
 * the COW file where the test reads it (run.files), tables name it as the server sees it.
 * @param {Run} run
 */
function snapshotDevices(setup, run, chunk, slowFlush = 0) {
  const kinds = setup === 'P+PO' ? ['P', 'PO'] : [setup];
  const origin = join(run.served, 'origin.img');
  const devices = [{ name: 'base', table: `0 ${run.geo.sectors} snapshot-origin ${origin}`, cow: '', helper: false }];
  kinds.forEach((kind, i) => {
    const cow = join(run.files, `snap${i}.cow`);
    sparse(cow, run.geo.cowBytes);
    let cowDev = join(run.served, `snap${i}.cow`);
    if (slowFlush > 0) {
      const served = cowDev;
      cowDev = `cow${i}-slow`;
      const n = run.geo.cowBytes / SECTOR;
      devices.push({ name: cowDev, table: `0 ${n} delay ${served} 0 0 ${served} 0 0 ${served} 0 ${slowFlush}`, cow: '', helper: true });
    }
    devices.push({ name: `snap${i}`, table: `0 ${run.geo.sectors} snapshot ${origin} ${cowDev} ${kind} ${chunk}`, cow, helper: false });
  });
  return devices;
}

const exported = (devices) => devices.filter((d) => !d.helper);

/** @param {Run} run */
function serve(run, devices) {
  return startServer(['--quiet', ...run.serveArgs, ...devices.flatMap((d) => ['--device', d.name, d.table])], { dir: run.dir });
}

/**
 * One cycle: start the server, check what a previous kill left (re-basing each view on it),
 * write at random, kill (and cut the power, when the run has a volatile disk).
 * @param {Run} run
 */
async function cycle(run, devices, views, random, report, opts) {
  const srv = await serve(run, devices);
  const clients = [];
  devices = exported(devices);
  try {
    for (const d of devices) clients.push(await NbdClient.connect({ socket: srv.socket, exportName: d.name }));
    if (opts.verify) {
      const before = [...views];
      for (let i = 0; i < devices.length; i++) {
        const view = views[i];
        const data = await readAll(clients[i], run.geo.deviceBytes);
        views[i] = new View(view.name, run.geo.sectors, settledContent(run, view, data, before));
      }
    }
    const writers = opts.originOnly ? clients.filter((_, i) => devices[i].name === 'base') : clients;
    const loads = writers.map((c) => new Workload(c, views[clients.indexOf(c)], { depth: 8, readShare: 0.2, ...run.geo.load, random }).start());
    await new Promise((r) => setTimeout(r, opts.killAfter(random)));
    if (opts.beforeKill) await opts.beforeKill(srv);
    // Which path the writes took: the receive threads (which commit a persistent snapshot's
    // metadata themselves before an origin write) or the event loop.
    if (run.power) {
      for (const d of devices) {
        const n = await threadCounters(srv, d.name);
        report.threadWrites += n.threadWrites;
        report.splicedWrites += n.splicedWrites; // of those, payloads spliced from the socket into the file
        report.threadCopies += n.threadCopies; // first writes the threads made (and committed, for P)
      }
    }
    srv.proc.kill('SIGKILL');
    await srv.stop();
    report.kills++;
    await Promise.all(loads.map((l) => l.stop()));
    if (run.power) await run.power.cut(random, report, opts.log ?? (() => {}));
    for (const l of loads) {
      if (l.mismatches.length) throw new Error(`a read before the kill returned wrong data:\n  ${l.mismatches.join('\n  ')}`);
      if (l.errorReplies.length) throw new Error(`error replies before the kill:\n  ${l.errorReplies.join('\n  ')}\n${srv.stderr}`);
      report.writesAcked += l.stats.writes;
      report.flushes += l.stats.flushes;
      report.lostInFlight += l.stats.lost;
    }
  } finally {
    for (const c of clients) c.destroy();
    if (srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop('SIGKILL');
  }
}

/** Checks every COW device with the independent reader: it must parse and be valid. */
async function checkCows(devices) {
  for (const d of devices) {
    if (!d.cow) continue;
    const info = await inspectCow(d.cow);
    if (!info.valid) throw new Error(`${d.cow} was invalidated by a kill`);
  }
}

async function snapshotRun(cfg, run, chunk, random, report, log) {
  const slowFlush = cfg.originOnly ? 0 : cfg.slowFlush ?? [0, 0, 5, 20][Math.floor(random() * 4)];
  report.slowFlushMs = slowFlush;
  const devices = snapshotDevices(cfg.setup, run, chunk, slowFlush);
  const views = exported(devices).map((d) => new View(d.name, run.geo.sectors, 0));
  const what = run.power ? 'kill and power cut' : 'kill';
  for (let k = 0; k < cfg.cycles; k++) {
    await cycle(run, devices, views, random, report, { verify: k > 0, killAfter: (r) => 50 + r() * 1200, log, originOnly: !!cfg.originOnly });
    await checkCows(devices);
    log(`${cfg.setup} chunk ${chunk}: ${what} ${k + 1}/${cfg.cycles} survived`);
  }
  await finalCheck(run, devices, views);
}

/** Starts once more, checks the last kill, and stops cleanly. @param {Run} run */
async function finalCheck(run, devices, views) {
  const srv = await serve(run, devices);
  devices = exported(devices);
  const before = [...views];
  try {
    for (let i = 0; i < devices.length; i++) {
      const c = await NbdClient.connect({ socket: srv.socket, exportName: devices[i].name });
      const data = await readAll(c, run.geo.deviceBytes);
      views[i] = new View(views[i].name, run.geo.sectors, settledContent(run, views[i], data, before));
      await c.close();
    }
  } finally {
    const r = await srv.stop();
    if (r.code !== 0) throw new Error(`dmkit serve exited with ${r.code} at the end:\n${r.stderr}`);
  }
  await checkCows(devices);
}

/**
 * Merge rounds: make exceptions, then merge them with kills while the merge runs, until the
 * merge finished (then the origin image itself is checked) or the kill points are used up; a
 * next round starts from the merged origin with a new snapshot on the same COW device.
 */
async function mergeRun(cfg, run, chunk, random, report, log) {
  const devices = snapshotDevices('P', run, chunk);
  const cow = devices[1].cow;
  const origin = join(run.served, 'origin.img');
  let content = /** @type {Uint32Array | number} */ (0);
  for (let k = 0; k < cfg.cycles;) {
    const views = devices.map((d) => new View(d.name, run.geo.sectors, content));
    await makeExceptions(run, devices, views, random);
    const before = await inspectCow(cow);
    log(`merge chunk ${chunk}: ${before.exceptions.length} exceptions to merge`);
    // The merging device shows the snapshot as it was, and takes writes while it merges.
    const merging = [{ name: 'base', table: `0 ${run.geo.sectors} snapshot-merge ${origin} ${join(run.served, 'snap0.cow')} P ${chunk}`, cow, helper: false }];
    const mview = [new View('merging base', run.geo.sectors, views[1].settled())];
    for (let first = true; k < cfg.cycles; first = false) {
      let inProgress = false;
      await cycle(run, merging, mview, random, report, {
        verify: !first,
        log,
        killAfter: (r) => 20 + r() * 600,
        beforeKill: async (srv) => {
          const st = await mergeStatus(srv);
          inProgress = st.allocated > st.metadata;
        },
      });
      k++;
      if (inProgress) report.killsDuringMerge++;
      const info = await inspectCow(cow);
      if (!info.valid) throw new Error('the COW device was invalidated by a kill during the merge');
      log(`merge chunk ${chunk}: kill ${k}/${cfg.cycles} survived (${inProgress ? `${info.exceptions.length} exceptions left` : 'merge had finished'})`);
      if (!inProgress) break;
    }
    content = await finishMerge(run, merging, mview, join(run.files, 'origin.img'), cow);
  }
}

async function mergeStatus(srv) {
  return snapshotStatus(await control(srv.control, { cmd: 'status', name: 'base' }));
}

/** Writes origin and snapshot for a while (no kill), so the COW device holds exceptions. @param {Run} run */
async function makeExceptions(run, devices, views, random) {
  const srv = await serve(run, devices);
  const clients = await Promise.all(devices.map((d) => NbdClient.connect({ socket: srv.socket, exportName: d.name })));
  const loads = clients.map((c, i) => new Workload(c, views[i], { depth: 8, maxSectors: 128, readShare: 0, flushShare: 0.01, random }).start());
  await new Promise((r) => setTimeout(r, 1500));
  await Promise.all(loads.map((l) => l.stop()));
  await Promise.all(clients.map((c) => c.close()));
  const r = await srv.stop();
  if (r.code !== 0) throw new Error(`setting up the merge: dmkit serve exited with ${r.code}:\n${r.stderr}`);
}

/**
 * Checks the last kill, lets the merge finish, and checks the origin image itself against the
 * merged view (after a clean stop, which syncs every file). Returns what every sector of the
 * origin holds now. @param {Run} run @param {string} origin the image where the test reads it
 */
async function finishMerge(run, merging, mview, origin, cow) {
  const srv = await serve(run, merging);
  try {
    const c = await NbdClient.connect({ socket: srv.socket, exportName: 'base' });
    const data = await readAll(c, run.geo.deviceBytes);
    mview[0] = new View('merging base', run.geo.sectors, settledContent(run, mview[0], data));
    await c.close();
    const t0 = Date.now();
    for (;;) {
      const st = await mergeStatus(srv);
      if (st.word) throw new Error(`merge status: ${st.word}`);
      if (st.allocated === st.metadata) break;
      if (Date.now() - t0 > 60_000) throw new Error(`the merge did not finish in 60 s (${st.allocated}/${st.total} ${st.metadata})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    const r = await srv.stop();
    if (r.code !== 0) throw new Error(`dmkit serve exited with ${r.code} after the merge:\n${r.stderr}`);
  }
  const image = readFileSync(origin);
  const problems = mview[0].check(image, 0, 'acked', 10);
  if (problems.length) throw new Error(`after the merge, the origin image is not what the merging device showed:\n  ${problems.join('\n  ')}`);
  const after = await inspectCow(cow);
  if (after.exceptions.length !== 0) throw new Error(`${after.exceptions.length} exceptions left after the merge finished`);
  return checkedContent(mview[0], image, 'acked');
}
