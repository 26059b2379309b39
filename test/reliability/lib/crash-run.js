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
import { writeFileSync, readFileSync, openSync, ftruncateSync, closeSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, tempDir } from '../../nbd/helpers.js';
import { readCow } from '../../../host-nbd/snapshot/cow-reader.js';
import { NbdClient } from './nbd-client.js';
import { View } from './history.js';
import { sectorsOf, decodeSector, SECTOR } from './pattern.js';
import { Workload, readAll, rng } from './workload.js';
import { control, snapshotStatus } from './control.js';

const DEVICE_BYTES = 8 << 20;
const SECTORS = DEVICE_BYTES / SECTOR;
const COW_BYTES = 12 << 20;

/**
 * @typedef {object} CrashConfig
 * @property {'P' | 'PO' | 'P+PO' | 'merge'} setup
 * @property {number} cycles      kill points
 * @property {number} seed
 * @property {number} [chunk]     chunk size in sectors (default: chosen by the seed)
 * @property {number} [slowFlush] ms each COW FLUSH is held (default: chosen by the seed)
 * @property {(line: string) => void} [log]
 */

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
 * The write each sector holds, or throws listing what the view does not allow.
 * @param {View} view @param {Buffer} data @param {'flush' | 'acked'} level
 */
function checkedContent(view, data, level) {
  const problems = view.check(data, 0, level, 10);
  if (problems.length) throw new Error(`after a kill, ${view.name} does not hold what was promised:\n  ${problems.join('\n  ')}`);
  const ids = new Uint32Array(view.sectors);
  for (let s = 0; s < view.sectors; s++) ids[s] = /** @type {number} */ (decodeSector(data, s * SECTOR, s));
  return ids;
}

/** @param {CrashConfig} cfg */
export async function runCrashCycles(cfg) {
  const random = rng(cfg.seed);
  const log = cfg.log ?? (() => {});
  // A merge needs many exceptions to still be merging at the kills: small chunks there.
  const sizes = cfg.setup === 'merge' ? [8, 16] : [8, 16, 32, 128];
  const chunk = cfg.chunk ?? sizes[Math.floor(random() * sizes.length)];
  const dir = tempDir('dmkit-crash-');
  const origin = join(dir, 'origin.img');
  writeFileSync(origin, sectorsOf(0, SECTORS, 0));
  const report = { setup: cfg.setup, chunk, seed: cfg.seed, slowFlushMs: 0, kills: 0, killsDuringMerge: 0, writesAcked: 0, flushes: 0, lostInFlight: 0 };
  try {
    if (cfg.setup === 'merge') await mergeRun(cfg, dir, origin, chunk, random, report, log);
    else await snapshotRun(cfg, dir, origin, chunk, random, report, log);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

/**
 * The devices of a snapshot setup and the table of each. With slowFlush (ms), each COW device
 * is reached through a `delay` device that holds FLUSHes that long: a slow disk, which widens
 * the window between a copy and the metadata commit that makes it count, where a kill hurts
 * an implementation that releases writes too early. Helper devices are not exported.
 */
function snapshotDevices(setup, dir, origin, chunk, slowFlush = 0) {
  const kinds = setup === 'P+PO' ? ['P', 'PO'] : [setup];
  const devices = [{ name: 'base', table: `0 ${SECTORS} snapshot-origin ${origin}`, cow: '', helper: false }];
  kinds.forEach((kind, i) => {
    const cow = join(dir, `snap${i}.cow`);
    sparse(cow, COW_BYTES);
    let cowDev = cow;
    if (slowFlush > 0) {
      cowDev = `cow${i}-slow`;
      const n = COW_BYTES / SECTOR;
      devices.push({ name: cowDev, table: `0 ${n} delay ${cow} 0 0 ${cow} 0 0 ${cow} 0 ${slowFlush}`, cow: '', helper: true });
    }
    devices.push({ name: `snap${i}`, table: `0 ${SECTORS} snapshot ${origin} ${cowDev} ${kind} ${chunk}`, cow, helper: false });
  });
  return devices;
}

const exported = (devices) => devices.filter((d) => !d.helper);

function serveArgs(devices) {
  return devices.flatMap((d) => ['--device', d.name, d.table]);
}

/**
 * One cycle: start the server, check what a previous kill left (re-basing each view on it),
 * write at random, kill. Returns the server's stderr of the run for failure messages.
 */
async function cycle(dir, devices, views, random, report, opts) {
  const srv = await startServer(['--quiet', ...serveArgs(devices)], { dir });
  const clients = [];
  devices = exported(devices);
  try {
    for (const d of devices) clients.push(await NbdClient.connect({ socket: srv.socket, exportName: d.name }));
    if (opts.verify) {
      for (let i = 0; i < devices.length; i++) {
        const view = views[i];
        const data = await readAll(clients[i], DEVICE_BYTES);
        checkedContent(view, data, 'flush');
        const now = checkedContent(view, data, 'acked');
        views[i] = new View(view.name, SECTORS, now);
      }
    }
    const loads = clients.map((c, i) => new Workload(c, views[i], { depth: 8, maxSectors: 64, readShare: 0.2, flushShare: 0.04, random }).start());
    await new Promise((r) => setTimeout(r, opts.killAfter(random)));
    if (opts.beforeKill) await opts.beforeKill(srv);
    srv.proc.kill('SIGKILL');
    await srv.stop();
    report.kills++;
    await Promise.all(loads.map((l) => l.stop()));
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

async function snapshotRun(cfg, dir, origin, chunk, random, report, log) {
  const slowFlush = cfg.slowFlush ?? [0, 0, 5, 20][Math.floor(random() * 4)];
  report.slowFlushMs = slowFlush;
  const devices = snapshotDevices(cfg.setup, dir, origin, chunk, slowFlush);
  const views = exported(devices).map((d) => new View(d.name, SECTORS, 0));
  for (let k = 0; k < cfg.cycles; k++) {
    await cycle(dir, devices, views, random, report, { verify: k > 0, killAfter: (r) => 50 + r() * 1200 });
    await checkCows(devices);
    log(`${cfg.setup} chunk ${chunk}: kill ${k + 1}/${cfg.cycles} survived`);
  }
  await finalCheck(dir, devices, views);
}

/** Starts once more, checks the last kill, and stops cleanly. */
async function finalCheck(dir, devices, views) {
  const srv = await startServer(['--quiet', ...serveArgs(devices)], { dir });
  devices = exported(devices);
  try {
    for (let i = 0; i < devices.length; i++) {
      const c = await NbdClient.connect({ socket: srv.socket, exportName: devices[i].name });
      const data = await readAll(c, DEVICE_BYTES);
      checkedContent(views[i], data, 'flush');
      views[i] = new View(views[i].name, SECTORS, checkedContent(views[i], data, 'acked'));
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
async function mergeRun(cfg, dir, origin, chunk, random, report, log) {
  const devices = snapshotDevices('P', dir, origin, chunk);
  const cow = devices[1].cow;
  let content = /** @type {Uint32Array | number} */ (0);
  for (let k = 0; k < cfg.cycles;) {
    const views = devices.map((d) => new View(d.name, SECTORS, content));
    await makeExceptions(dir, devices, views, random);
    const before = await inspectCow(cow);
    log(`merge chunk ${chunk}: ${before.exceptions.length} exceptions to merge`);
    // The merging device shows the snapshot as it was, and takes writes while it merges.
    const merging = [{ name: 'base', table: `0 ${SECTORS} snapshot-merge ${origin} ${cow} P ${chunk}`, cow, helper: false }];
    const mview = [new View('merging base', SECTORS, views[1].settled())];
    for (let first = true; k < cfg.cycles; first = false) {
      let inProgress = false;
      await cycle(dir, merging, mview, random, report, {
        verify: !first,
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
    content = await finishMerge(dir, merging, mview, origin, cow);
  }
}

async function mergeStatus(srv) {
  return snapshotStatus(await control(srv.control, { cmd: 'status', name: 'base' }));
}

/** Writes origin and snapshot for a while (no kill), so the COW device holds exceptions. */
async function makeExceptions(dir, devices, views, random) {
  const srv = await startServer(['--quiet', ...serveArgs(devices)], { dir });
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
 * merged view. Returns what every sector of the origin holds now.
 */
async function finishMerge(dir, merging, mview, origin, cow) {
  const srv = await startServer(['--quiet', ...serveArgs(merging)], { dir });
  try {
    const c = await NbdClient.connect({ socket: srv.socket, exportName: 'base' });
    const data = await readAll(c, DEVICE_BYTES);
    checkedContent(mview[0], data, 'flush');
    mview[0] = new View('merging base', SECTORS, checkedContent(mview[0], data, 'acked'));
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
