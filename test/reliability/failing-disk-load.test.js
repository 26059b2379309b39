// Random disk faults under a verified workload: `dmkit serve` with a linear device over a 64 MiB
// image on the failing FUSE disk (lib/faulty-fs.py), 4 clients each running a verified random
// Workload (depth 8, writes and reads of up to 128 sectors, FLUSHes and FUA writes) on its own
// quarter of the device for ~4 s, while the test changes the disk's faults every 100-250 ms at
// random: reads and writes failing over a few ranges of 4 KiB to 1 MiB, fsync failing now and
// then, and quiet periods with no fault. Then the faults are lifted and a fresh client reads the
// whole device back.
//
// What it proves, on the receive threads and on the event loop (--loop-receive):
//  - every failure reaches the client as an error reply with EIO, and nothing else does: no
//    connection is ever closed by the server, no request is left unanswered;
//  - a read answered during the faults returns what the device holds: the last acknowledged write
//    or a write sent after it (one that failed may or may not have landed), never other data;
//  - nothing acknowledged is lost: once the faults are lifted, every sector holds its last
//    acknowledged write, or a write sent after it that failed (View.check at level 'acked');
//  - the server then serves cleanly (a new workload sees no error) and exits 0.
// Why: failing-disk.test.js checks each kind of fault alone, one request at a time; on a dying disk
// they come mixed, while many requests of several connections are in flight on the same pages
// (the kernel's page cache, the server's mapping of the image, FLUSHes covering writes that
// failed). Faults chosen at random, changed while requests run, find the interleavings a
// hand-written case does not. The seed is printed; DMKIT_FAULT_SEED=<seed> repeats the fault
// schedule and the workloads' choices (the timing of a run still varies).
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, startServer, stopAllServers, threadCounters } from '../nbd/helpers.js';
import { mountFaultyDisk, unmountAllFaultyDisks } from './lib/faulty-disk.js';
import { NbdClient, NbdReplyError, CMD_FLAG_FUA } from './lib/nbd-client.js';
import { View } from './lib/history.js';
import { Workload, readAll, rng } from './lib/workload.js';
import { sectorsOf, SECTOR } from './lib/pattern.js';

const KiB = 1024, MiB = 1 << 20;
const EIO = 5;
const IMAGE = 64 * MiB, SECTORS = IMAGE / SECTOR;
const CLIENTS = 4, REGION = SECTORS / CLIENTS;
const RUN_MS = 4000;

const SEED = process.env.DMKIT_FAULT_SEED !== undefined ? Number(process.env.DMKIT_FAULT_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
console.log(`failing-disk-load: seed ${SEED} (DMKIT_FAULT_SEED=${SEED} repeats it)`);

/** The image every run starts from: each sector holds write 0 (pattern.js). */
const BASE = sectorsOf(0, SECTORS, 0);

// Servers first (they have files open on the disks), then the disks.
afterAll(async () => { await stopAllServers(); await unmountAllFaultyDisks(); });

/** Every connection the server closed, it closed because its client went: none broke off. */
function expectOnlyClientDisconnects(stderr, why) {
  const closes = [...stderr.matchAll(/^dmkit: connection \d+ \(\w+\) closed: (.*?)(?: \[|$)/gm)].map((m) => m[1]);
  expect(closes.length, why).toBeGreaterThan(0);
  expect(closes.filter((c) => !['client sent NBD_CMD_DISC', 'client disconnected'].includes(c)), why).toEqual([]);
}

/**
 * A fault set for d.img: a quiet period (no fault) one time in five; else read faults, write
 * faults or both over 1-3 ranges each of 4 KiB to 1 MiB (log-uniform, sector-aligned), with
 * fsync failing one time in five.
 * @param {() => number} random
 */
function randomFaults(random) {
  if (random() < 0.2) return {};
  const ranges = () => Array.from({ length: 1 + Math.floor(random() * 3) }, () => {
    const len = Math.max(8, Math.round((4 * KiB * 256 ** random()) / SECTOR)) * SECTOR;
    return [Math.floor(random() * ((IMAGE - len) / SECTOR + 1)) * SECTOR, len];
  });
  const kinds = random();
  const f = {};
  if (kinds < 0.7) f.write = ranges();
  if (kinds > 0.35) f.read = ranges();
  if (random() < 0.2) f.fsync = true;
  return { 'd.img': f };
}

/** How many of `lines` start with each word (the kinds of a failures() log or of error replies). */
const countKinds = (lines) => lines.reduce((o, l) => { const k = l.split(/[ :]/)[0]; o[k] = (o[k] ?? 0) + 1; return o; }, {});

/**
 * Counts every error reply of `client` by errno and by request kind, and keeps the first few
 * that were not EIO (the Workload keeps only its first 20 messages).
 * @param {NbdClient} client
 */
function recordErrors(client, errors) {
  const request = client.request.bind(client);
  client.request = (...args) => request(...args).catch((e) => {
    if (e instanceof NbdReplyError) {
      errors.byErrno[e.errno] = (errors.byErrno[e.errno] ?? 0) + 1;
      const kind = e.message.split(/[ :]/)[0] + (args[1] & CMD_FLAG_FUA ? '+FUA' : '');
      errors.byKind[kind] = (errors.byKind[kind] ?? 0) + 1;
      if (e.errno !== EIO && errors.notEio.length < 20) errors.notEio.push(e.message);
    }
    throw e;
  });
  return client;
}

/** Runs the case over a fresh faulty disk, with `serveArgs` added to `dmkit serve`. */
async function faultsUnderLoad(serveArgs, seed) {
  const why = `seed ${seed} (run with DMKIT_FAULT_SEED=${SEED}), serve ${JSON.stringify(serveArgs)}`;
  const t0 = performance.now();
  const dir = tempDir('dmkit-failing-disk-load-');
  const disk = await mountFaultyDisk(dir);
  /** @type {Awaited<ReturnType<typeof startServer>> | null} */
  let srv = null;
  /** @type {NbdClient[]} */
  const clients = [];
  try {
    writeFileSync(join(disk.source, 'd.img'), BASE);
    const served = join(disk.mount, 'd.img');
    srv = await startServer([...serveArgs, '--device', 'd', `0 ${SECTORS} linear ${served} 0`], { dir });
    const errors = { byErrno: {}, byKind: {}, notEio: [] };
    const views = [], loads = [];
    for (let i = 0; i < CLIENTS; i++) {
      const c = recordErrors(await NbdClient.connect({ socket: srv.socket, exportName: 'd' }), errors);
      clients.push(c);
      const view = new View(`client ${i}`, REGION, 0, i * REGION);
      views.push(view);
      loads.push(new Workload(c, view, { depth: 8, maxSectors: 128, random: rng(seed * 16 + i) }));
    }
    const tStart = performance.now();
    for (const l of loads) l.start();

    // The faults change every 100-250 ms until RUN_MS have passed.
    const random = rng(seed);
    const schedule = [];
    while (performance.now() - tStart < RUN_MS) {
      const faults = randomFaults(random);
      disk.setFaults(faults);
      // Opening the file through FUSE drops its cached pages (no FOPEN_KEEP_CACHE), as memory
      // pressure would: the kernel reads them from the failing disk again, so read faults fire.
      closeSync(openSync(served, 'r'));
      schedule.push(faults['d.img'] ?? {});
      await new Promise((r) => setTimeout(r, 100 + random() * 150));
    }
    disk.setFaults({});
    await Promise.all(loads.map((l) => l.stop()));
    const tRun = performance.now() - tStart;
    for (const c of clients) await c.close();

    const stats = loads.map((l) => l.stats);
    const total = (k) => stats.reduce((n, s) => n + s[k], 0);
    const failures = disk.failures();
    const summary = `${why}: ${schedule.length} fault sets (${schedule.filter((f) => !f.read && !f.write).length} quiet, ` +
      `${schedule.filter((f) => f.fsync).length} with fsync failing) over ${Math.round(tRun)} ms; ` +
      `${total('writes')} writes, ${total('reads')} reads, ${total('flushes')} flushes answered; error replies ${JSON.stringify(errors.byKind)} ` +
      `by errno ${JSON.stringify(errors.byErrno)}; disk failures ${JSON.stringify(countKinds(failures))}`;
    console.log(summary);

    // The workloads: every read answered data that was allowed, nothing went unanswered, every error was EIO.
    expect(loads.flatMap((l) => l.mismatches), summary).toEqual([]);
    expect(total('lost'), summary).toBe(0);
    expect(errors.notEio, summary).toEqual([]);
    expect(Object.keys(errors.byErrno), summary).toEqual([String(EIO)]);
    // Faults fired: the disk failed operations and the clients got errors for them.
    expect(failures.length, summary).toBeGreaterThan(0);
    expect(failures.filter((l) => l.startsWith('write ')).length, summary).toBeGreaterThan(0);
    expect(total('errors'), summary).toBeGreaterThan(0);
    expect(total('errors'), summary).toBe(Object.values(errors.byErrno).reduce((a, b) => a + b, 0));
    expect(total('writes') + total('reads'), summary).toBeGreaterThan(0);

    // The faults lifted: a fresh client finds every acknowledged write.
    const fresh = recordErrors(await NbdClient.connect({ socket: srv.socket, exportName: 'd' }), errors);
    clients.push(fresh);
    let all = await readAll(fresh, IMAGE);
    for (const v of views) expect(v.check(all.subarray(v.first * SECTOR, (v.first + v.sectors) * SECTOR), v.first, 'acked'), summary).toEqual([]);

    // The server serves on, cleanly: a short workload on each region sees no error, and its
    // writes read back.
    const again = views.map((v, i) => new Workload(fresh, v, { depth: 8, maxSectors: 128, random: rng(seed * 16 + 8 + i) }).start());
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(again.map((l) => l.stop()));
    await fresh.flush();
    expect(again.flatMap((l) => l.mismatches), summary).toEqual([]);
    expect(again.map((l) => [l.stats.errors, l.stats.lost]), summary).toEqual(again.map(() => [0, 0]));
    expect(again.reduce((n, l) => n + l.stats.writes, 0), summary).toBeGreaterThan(0);
    all = await readAll(fresh, IMAGE);
    for (const v of views) expect(v.check(all.subarray(v.first * SECTOR, (v.first + v.sectors) * SECTOR), v.first, 'acked'), summary).toEqual([]);
    await fresh.close();

    // The path under test answered the requests: the receive threads, or the event loop alone.
    const paths = await threadCounters(srv, 'd');
    if (serveArgs.includes('--loop-receive')) expect(paths.threadWrites + paths.threadReads, `${summary}\n${JSON.stringify(paths)}`).toBe(0);
    else expect(paths.threadWrites > 0 && paths.threadReads > 0, `${summary}\n${JSON.stringify(paths)}`).toBe(true);

    expect(srv.stderr, summary).toMatch(/^dmkit: I\/O error on \S*d\.img: .*\(EIO\)/m);
    expectOnlyClientDisconnects(srv.stderr, summary);
    expect(srv.proc.exitCode, summary).toBe(null);
    const stopped = await srv.stop();
    srv = null;
    expect(stopped.code, `${summary}\n${stopped.stderr.slice(-4000)}`).toBe(0);
    console.log(`failing-disk-load: ${JSON.stringify(serveArgs)} done in ${Math.round(performance.now() - t0)} ms`);
  } finally {
    for (const c of clients) if (!c.dead) c.destroy();
    if (srv) await srv.stop();
    await disk.unmount();
  }
}

describe('random disk faults under a verified workload', () => {
  it('4 clients on the receive threads, read, write and fsync faults changing every 100-250 ms: only EIO replies, no connection broken, reads see allowed data, nothing acknowledged lost, the server serves on and exits 0', async () => {
    await faultsUnderLoad([], SEED);
  }, 60_000);

  it('the same with --loop-receive (every request on the event loop)', async () => {
    await faultsUnderLoad(['--loop-receive'], (SEED + 1) >>> 0);
  }, 60_000);
});
