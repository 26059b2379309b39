// @ts-check
// npm run bench -- snapshot: what a snapshot costs a 4 KiB random write. fio (nbd engine, QD32,
// the same job and so the same offsets every time) writes to each configuration, in one run:
//   - a plain linear device over the origin image (the baseline every ratio is against);
//   - the origin (snapshot-origin) with one active snapshot, chunk 8 and 64 sectors, persistent
//     (P: Linux's metadata commits, a flush and a FUA write per batch of copies) and transient
//     (N), and P once more with the COW device on tmpfs, where those flushes cost nothing, and
//     once with the COW file's blocks allocated beforehand (as a logical volume's are);
//   - the snapshot device itself (P);
//   - nbdkit's file plugin, and nbdkit --filter=cow file with cow-block-size equal to the chunk.
// Each run gets a fresh sparse origin and COW device and three passes: in the first every write
// lands in a chunk nothing copied yet (the offsets are distinct 4 KiB blocks spread over the
// lower half of a large origin, so at chunk 64 only a few share a chunk), the second overwrites
// the chunks the first copied, and the third is the first job again over the upper half: first
// writes to a server that has been running (its JavaScript compiled and its pools grown by the
// two passes before), where the first pass measures a server just started. The snapshot's status
// line is read after each pass: the first and third must each have copied a chunk per write (all
// of them at chunk 8), the second nothing.
// The ratio is time per write / time per write on linear (= linear IOPS / IOPS). The machine's
// load can change several-fold within minutes, so linear runs alternate with the others: every
// configuration runs between two linear runs, its ratio is taken against their mean time per
// write, and the median over rounds is reported with the lowest and highest round beside it
// (every other round runs the configurations in reverse order).
// Each round also measures the file system's fdatasync latency (fio, psync, in the same temp
// dir), after 4 KiB writes over written blocks and over holes of a sparse file (what a COW file
// sees: each commit's flush then also commits the blocks the copies allocated): a persistent
// snapshot's first writes wait for up to two of them per commit. The servers' CPU time per
// write (from /proc) is reported beside: it moves far less with the load than the IOPS do, and
// it is the cost that is the server's own (waiting for the disk is not in it; nor is writeback
// the kernel does later in its own threads, while an fdatasync does it in the server's).
// After the first pass, one NBD FLUSH (timed inside nbdsh) makes everything the pass wrote
// durable, and "until durable" is the pass and that flush together, per write. A linear device
// acknowledges a write while it is only in the page cache and pays for the disk later (at the
// flush, or in the kernel's writeback threads after the benchmark); a persistent snapshot must
// make each copied chunk and its metadata durable before the write it protects may proceed
// (Linux's commit points), so it pays most of that during the pass. The first-pass ratio compares
// an acknowledged write with a durable one; the until-durable ratio compares durable with durable.
// Environment: BENCH_SNAPSHOT_WRITES (8192 per pass), BENCH_SNAPSHOT_ORIGIN_GIB (256),
// BENCH_ROUNDS (5). docs/performance.md has the figures and what they mean.
import { mkdtempSync, rmSync, openSync, closeSync, ftruncateSync, statfsSync, fstatSync, writeSync, fsyncSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDmkit, startNbdkit, missingPrograms } from './lib/servers.js';
import { runFio, fioJob } from './lib/fio.js';
import { flushSeconds } from './lib/flush.js';

const MIB = 1 << 20;
const WRITE_BYTES = 4096;
/** Sparse, so its size costs nothing; large, so that random 4 KiB writes rarely share a 32 KiB chunk. */
const ORIGIN_BYTES = Number(process.env.BENCH_SNAPSHOT_ORIGIN_GIB ?? 256) * 1024 * MIB;
const WRITES = Number(process.env.BENCH_SNAPSHOT_WRITES ?? 8192);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const QD = 32;
const JOB = ['--rw=randwrite', `--bs=${WRITE_BYTES}`, `--io_size=${WRITES * WRITE_BYTES}`, `--size=${ORIGIN_BYTES / 2}`];
/** The warm pass: the same job over the origin's upper half, which the first two never touch. */
const WARM_JOB = [...JOB, `--offset=${ORIGIN_BYTES / 2}`];
/** Target of the issue: first writes at chunk size 8 cost under 2x linear. */
const TARGET = 2;
/** At chunk 64 some random writes share a chunk; more than this share means the origin is too small. */
const MIN_FIRST_FRACTION = 0.99;
const TMPFS_MAGIC = 0x01021994;
const SHM = '/dev/shm';

function makeSparse(path, bytes) {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
}

/** Writes zeroes over the whole file and syncs it: every block allocated, none unwritten. */
function writeZeroes(path) {
  const fd = openSync(path, 'r+');
  try {
    const zeroes = Buffer.alloc(MIB);
    const bytes = fstatSync(fd).size;
    for (let at = 0; at < bytes; at += MIB) writeSync(fd, zeroes, 0, Math.min(MIB, bytes - at), at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isTmpfs(path) {
  try {
    return statfsSync(path).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * @typedef {object} Config
 * @property {string} label
 * @property {(dir: string, base: string, cow: string) => Promise<import('./lib/servers.js').BenchServer>} start
 * @property {string} [exportName]
 * @property {number} [chunk] chunk size in sectors, for the rows that have one
 * @property {string} [snapshot] the snapshot device whose status proves the copies (dmkit)
 * @property {boolean} [baseline] the linear device the ratios are against
 * @property {boolean} [cowOnTmpfs] the COW device lives on tmpfs
 * @property {boolean} [cowWritten] the COW file is written with zeroes first (allocated, as an LV is)
 */

/** @param {boolean} tmpfs whether a tmpfs is there for the COW-on-tmpfs row @returns {Config[]} */
function configs(tmpfs) {
  const sectors = ORIGIN_BYTES / 512;
  const snapshotPair = (store, chunk) => (dir, base, cow) => startDmkit(dir, [
    ['base', `0 ${sectors} snapshot-origin ${base}`],
    ['snap', `0 ${sectors} snapshot ${base} ${cow} ${store} ${chunk}`],
  ]);
  /** @type {Config[]} */
  const list = [
    { label: 'linear', start: (dir, base) => startDmkit(dir, [['lin', `0 ${sectors} linear ${base} 0`]]), exportName: 'lin', baseline: true },
    { label: 'nbdkit file', start: (dir, base) => startNbdkit(dir, ['file', base]) },
  ];
  for (const chunk of [8, 64]) {
    list.push(
      { label: `origin, snapshot P ${chunk}`, chunk, start: snapshotPair('P', chunk), exportName: 'base', snapshot: 'snap' },
      { label: `origin, snapshot N ${chunk}`, chunk, start: snapshotPair('N', chunk), exportName: 'base', snapshot: 'snap' },
      { label: `snapshot device, P ${chunk}`, chunk, start: snapshotPair('P', chunk), exportName: 'snap', snapshot: 'snap' },
      { label: `nbdkit cow, block ${chunk / 2}K`, chunk,
        start: (dir, base) => startNbdkit(dir, ['--filter=cow', 'file', base, `cow-block-size=${chunk * 512}`]) },
    );
  }
  // P 8 once more with the COW file's blocks allocated beforehand: its flushes then commit no
  // file-system metadata for the blocks the copies fill.
  list.splice(3, 0, { label: 'origin, snapshot P 8, COW allocated', chunk: 8, start: snapshotPair('P', 8), exportName: 'base', snapshot: 'snap', cowWritten: true });
  if (tmpfs) {
    list.splice(3, 0, { label: 'origin, snapshot P 8, COW on tmpfs', chunk: 8, start: snapshotPair('P', 8), exportName: 'base', snapshot: 'snap', cowOnTmpfs: true });
  }
  return list;
}

/**
 * One configuration with a fresh origin and COW device: the first pass, then the same job again.
 * @param {Config} config @param {string} dir @param {string | null} shmDir
 * @returns {Promise<Run>}
 */
async function measure(config, dir, shmDir) {
  // Fresh, so that every configuration's writes allocate the origin's blocks as linear's did.
  const base = join(dir, 'base.img');
  makeSparse(base, ORIGIN_BYTES);
  const cow = join(config.cowOnTmpfs && shmDir ? shmDir : dir, 'cow.img');
  // Room for a chunk per write of the two passes that copy, plus the persistent store's header
  // and metadata areas.
  const chunkBytes = (config.chunk ?? 8) * 512;
  makeSparse(cow, Math.ceil((2 * WRITES * chunkBytes * 1.05) / MIB) * MIB + 4 * MIB);
  if (config.cowWritten) writeZeroes(cow);
  try {
    const server = await config.start(dir, base, cow);
    try {
      return await passes(config, server);
    } catch (e) {
      const said = server.output().trim();
      throw new Error(`${e instanceof Error ? e.message : e}${said ? `\nthe server printed:\n${said.slice(-3000)}` : ''}`);
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(cow, { force: true });
    rmSync(base, { force: true });
  }
}

/**
 * The first pass, the overwrite pass and the warm first pass, each checked against the snapshot's status.
 * @param {Config} config @param {import('./lib/servers.js').BenchServer} server
 */
async function passes(config, server) {
  const uri = server.uri(config.exportName ?? '');
  const cpu0 = server.cpuSeconds();
  const first = await runFio(uri, JOB, { iodepth: QD });
  const cpu1 = server.cpuSeconds();
  const flush = await flushSeconds(uri);
  const cpuFlushed = server.cpuSeconds();
  const copiedFirst = await copiedChunks(server, config);
  const cpu2 = server.cpuSeconds();
  const over = await runFio(uri, JOB, { iodepth: QD });
  const cpu3 = server.cpuSeconds();
  const copiedOver = await copiedChunks(server, config);
  const cpu4 = server.cpuSeconds();
  const warm = await runFio(uri, WARM_JOB, { iodepth: QD });
  const cpu5 = server.cpuSeconds();
  const copiedWarm = await copiedChunks(server, config);
  for (const [pass, r] of /** @type {const} */ ([['first', first], ['overwrite', over], ['warm first', warm]])) {
    if (r.ios !== WRITES) throw new Error(`${config.label}, ${pass} pass: fio did ${r.ios} writes, expected ${WRITES}`);
  }
  if (copiedFirst !== null) {
    const fewest = config.chunk === 8 ? WRITES : Math.ceil(WRITES * MIN_FIRST_FRACTION);
    if (copiedFirst < fewest || copiedFirst > WRITES) {
      throw new Error(`${config.label}: the first pass copied ${copiedFirst} chunks for ${WRITES} writes (expected at least ${fewest})`);
    }
    if (copiedOver !== copiedFirst) throw new Error(`${config.label}: the overwrite pass copied ${Number(copiedOver) - copiedFirst} chunks`);
    const copiedByWarm = Number(copiedWarm) - copiedFirst;
    if (copiedByWarm < fewest || copiedByWarm > WRITES) {
      throw new Error(`${config.label}: the warm first pass copied ${copiedByWarm} chunks for ${WRITES} writes (expected at least ${fewest})`);
    }
  }
  const usPerWrite = (seconds) => (seconds * 1e6) / WRITES;
  return {
    first: first.iops, over: over.iops, cpuFirst: usPerWrite(cpu1 - cpu0), cpuOver: usPerWrite(cpu3 - cpu2), copied: copiedFirst,
    warm: warm.iops, cpuWarm: usPerWrite(cpu5 - cpu4),
    durable: usPerWrite(WRITES / first.iops + flush), cpuDurable: usPerWrite(cpuFlushed - cpu0),
  };
}

/** Chunks the snapshot has copied, from its status line `0 N snapshot A/T M` (A counts metadata too). */
async function copiedChunks(server, config) {
  if (!config.snapshot || !server.status || !config.chunk) return null;
  const line = await server.status(config.snapshot);
  const m = /snapshot (\d+)\/\d+ (\d+)/.exec(line);
  if (!m) throw new Error(`${config.label}: unexpected snapshot status '${line}'`);
  return (Number(m[1]) - Number(m[2])) / config.chunk;
}

/**
 * Median fdatasync latency (ms) of 4 KiB random writes to a file in `dir`, each followed by
 * fdatasync: over blocks written before (fio lays the file out), or over holes of a sparse file.
 * @param {string} dir @param {boolean} sparse
 */
async function fdatasyncMs(dir, sparse) {
  const file = join(dir, 'fdatasync-probe');
  try {
    // Written: fio writes the whole file first (--overwrite). Sparse: fio keeps the file it finds.
    if (sparse) makeSparse(file, 64 * MIB);
    const job = await fioJob(['--name=fdatasync', `--filename=${file}`, `--size=${sparse ? 64 : 16}m`, '--io_size=1m',
      '--rw=randwrite', `--bs=${WRITE_BYTES}`, '--ioengine=psync', '--fdatasync=1', '--fallocate=none',
      ...(sparse ? ['--norandommap'] : ['--overwrite=1'])]);
    return job.sync.lat_ns.percentile['50.000000'] / 1e6;
  } finally {
    rmSync(file, { force: true });
  }
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export async function run() {
  const missing = missingPrograms(['fio', 'nbdkit', 'nbdsh']);
  if (missing.length) {
    const packages = missing.map((p) => (p === 'nbdsh' ? 'python3-libnbd' : p));
    throw new Error(`bench snapshot needs ${missing.join(' and ')} (apt-get install ${packages.join(' ')})`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'dmkit-snapshot-bench-'));
  const shmDir = isTmpfs(SHM) ? mkdtempSync(join(SHM, 'dmkit-snapshot-bench-')) : null;
  try {
    const list = configs(shmDir !== null);
    const linear = /** @type {Config} */ (list.find((c) => c.baseline));
    /** @type {Map<Config, Pair[]>} */
    const results = new Map(list.map((c) => [c, []]));
    /** @type {Run[]} */
    const linearRuns = [];
    const syncs = [], sparseSyncs = [];
    console.log(`snapshot benchmark: fio --ioengine=nbd, ${WRITES} random 4 KiB writes per pass at QD${QD} over a ` +
      `${ORIGIN_BYTES / 1024 / MIB} GiB sparse origin in ${dir}, fresh origin and COW per run, ${ROUNDS} rounds`);
    if (!shmDir) console.log(`  (no tmpfs at ${SHM}: the COW-on-tmpfs row is left out)`);
    const others = list.filter((c) => c !== linear);
    for (let round = 0; round < ROUNDS; round++) {
      // Linear runs between all the others: each configuration is compared with the mean of the
      // linear runs just before and just after it. Every other round runs the list backwards,
      // so no configuration always comes first.
      let before = await measure(linear, dir, shmDir);
      linearRuns.push(before);
      for (const c of round % 2 ? [...others].reverse() : others) {
        const r = await measure(c, dir, shmDir);
        const after = await measure(linear, dir, shmDir);
        linearRuns.push(after);
        /** @type {Pair[]} */ (results.get(c)).push({ run: r, linear: [before, after] });
        console.log(`  round ${round + 1}  ${c.label.padEnd(34)} ${describe(r)}` + (r.copied === null ? '' : `, ${r.copied} chunks copied`) +
          `  (linear before: ${describe(before)}; after: ${describe(after)})`);
        before = after;
      }
      syncs.push(await fdatasyncMs(dir, false));
      sparseSyncs.push(await fdatasyncMs(dir, true));
      console.log(`  round ${round + 1}  fdatasync of a 4 KiB write in ${dir}: median ${syncs[syncs.length - 1].toFixed(2)} ms ` +
        `over written blocks, ${sparseSyncs[sparseSyncs.length - 1].toFixed(2)} ms over holes`);
    }
    results.set(linear, linearRuns.map((run) => ({ run, linear: [run, run] })));
    report(list, results, median(syncs), median(sparseSyncs));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (shmDir) rmSync(shmDir, { recursive: true, force: true });
  }
}

/**
 * IOPS of each pass, the server's CPU microseconds per write in each, chunks the first copied,
 * and, for the first pass with the FLUSH after it, microseconds per write until durable and the CPU in them.
 * @typedef {{first: number, over: number, warm: number, cpuFirst: number, cpuOver: number, cpuWarm: number,
 *   copied: number | null, durable: number, cpuDurable: number}} Run
 * @typedef {{run: Run, linear: [Run, Run]}} Pair a configuration's run and the linear runs just before and after it
 */

/**
 * Time (or CPU time) per write over linear's, within a pair: against the mean of the two linear
 * runs around it. `per` gives a run's time per write in any unit.
 * @param {Pair} p @param {(r: Run) => number} per
 */
function ratio(p, per) {
  return per(p.run) / ((per(p.linear[0]) + per(p.linear[1])) / 2);
}

/** @param {Run} r */
function describe(r) {
  return `first ${r.first.toFixed(0)} IOPS ${r.cpuFirst.toFixed(0)} us, until durable ${r.durable.toFixed(0)} us/write, ` +
    `overwrite ${r.over.toFixed(0)} IOPS ${r.cpuOver.toFixed(0)} us, warm first ${r.warm.toFixed(0)} IOPS ${r.cpuWarm.toFixed(0)} us`;
}

/** @param {Config[]} list @param {Map<Config, Pair[]>} results @param {number} syncMs @param {number} sparseSyncMs */
function report(list, results, syncMs, sparseSyncMs) {
  console.log('\nMedians over rounds; "x linear" is time (or CPU time) per write over that of the linear runs just before and after,');
  console.log('with the lowest and highest round in brackets.');
  console.log('| configuration | first writes: IOPS | x linear | CPU us/write | x linear | overwrites: IOPS | x linear | CPU us/write | x linear |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  const verdicts = [];
  const med = (rs, f) => median(rs.map(f));
  const spread = (rs, f) => {
    const v = rs.map(f);
    return `${median(v).toFixed(2)}x (${Math.min(...v).toFixed(2)}-${Math.max(...v).toFixed(2)})`;
  };
  const timeFirst = (/** @type {Run} */ r) => 1 / r.first, timeOver = (/** @type {Run} */ r) => 1 / r.over;
  for (const c of list) {
    const rs = /** @type {Pair[]} */ (results.get(c));
    const first = med(rs, (p) => ratio(p, timeFirst));
    const copied = rs[0].run.copied;
    const note = copied !== null && copied < WRITES ? ` (${(100 * copied / WRITES).toFixed(1)}% first writes)` : '';
    console.log(`| ${c.label}${note} | ${med(rs, (p) => p.run.first).toFixed(0)} | ${spread(rs, (p) => ratio(p, timeFirst))}` +
      ` | ${med(rs, (p) => p.run.cpuFirst).toFixed(0)} | ${spread(rs, (p) => ratio(p, (r) => r.cpuFirst))}` +
      ` | ${med(rs, (p) => p.run.over).toFixed(0)} | ${spread(rs, (p) => ratio(p, timeOver))}` +
      ` | ${med(rs, (p) => p.run.cpuOver).toFixed(0)} | ${spread(rs, (p) => ratio(p, (r) => r.cpuOver))} |`);
    if (c.chunk === 8 && c.snapshot) verdicts.push(`${c.label}: first writes cost ${first.toFixed(2)}x linear (target < ${TARGET}x): ${first < TARGET ? 'met' : 'MISSED'}`);
  }
  console.log('\nFirst writes to a server that has been running (the third pass, over fresh chunks); "x linear" against linear\'s third pass.');
  console.log('| configuration | warm first writes: IOPS | x linear | CPU us/write | x linear |');
  console.log('| --- | --- | --- | --- | --- |');
  const timeWarm = (/** @type {Run} */ r) => 1 / r.warm;
  for (const c of list) {
    const rs = /** @type {Pair[]} */ (results.get(c));
    console.log(`| ${c.label} | ${med(rs, (p) => p.run.warm).toFixed(0)} | ${spread(rs, (p) => ratio(p, timeWarm))}` +
      ` | ${med(rs, (p) => p.run.cpuWarm).toFixed(0)} | ${spread(rs, (p) => ratio(p, (r) => r.cpuWarm))} |`);
    if (c.chunk === 8 && c.snapshot) verdicts.push(`${c.label}: first writes to a running server cost ${med(rs, (p) => ratio(p, timeWarm)).toFixed(2)}x linear`);
  }
  console.log('\nFirst writes until durable (the first pass, then one FLUSH), per write; "x linear" as above.');
  console.log('| configuration | until durable: us/write | x linear | CPU us/write | x linear |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const c of list) {
    const rs = /** @type {Pair[]} */ (results.get(c));
    console.log(`| ${c.label} | ${med(rs, (p) => p.run.durable).toFixed(0)} | ${spread(rs, (p) => ratio(p, (r) => r.durable))}` +
      ` | ${med(rs, (p) => p.run.cpuDurable).toFixed(0)} | ${spread(rs, (p) => ratio(p, (r) => r.cpuDurable))} |`);
    if (c.chunk === 8 && c.snapshot) verdicts.push(`${c.label}: first writes until durable cost ${med(rs, (p) => ratio(p, (r) => r.durable)).toFixed(2)}x linear`);
  }
  console.log(`\nfdatasync of a 4 KiB write (median over rounds): ${syncMs.toFixed(2)} ms over written blocks, ${sparseSyncMs.toFixed(2)} ms over holes`);
  for (const v of verdicts) console.log(v);
}
