// @ts-check
// First writes to an origin whose one snapshot is persistent (P) go by the connection's receive
// thread too (host-nbd/engine/thread-copies.js): it copies the chunk into a COW chunk the core
// lent it, and commits the exception to the snapshot's metadata areas (addon cow_areas.h) before
// it writes the origin. The COW image must be byte for byte the one the core writes for the same
// writes (and so Linux's, test/vm snapshot-format), every write answered must survive a kill, and
// the core must carry on from the threads' areas as if it had written them.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, rmSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadReceiveThreads } from '../../host-nbd/server/receive-threads.js';
import { RawClient, requestHeader } from './raw-client.js';
import { writersReaderAndSuspends, changedChunks, snapshotUsage as usage, keepsOriginal, wholeOriginal } from './thread-copy-checks.js';
import { tempDir, testBytes, startServer, stopAllServers, ok, run, CLIENT_ENV, sparseFile, threadCounters, dmkit } from './helpers.js';

const MiB = 1 << 20;
const CHUNK = 4096; // chunk size 8 sectors: 256 exceptions per metadata area
const { threads, why } = loadReceiveThreads();
if (!threads) console.warn(`persistent thread-copy tests skipped: the native addon is not built (${why}); run npm run build:addon`);

const dirs = /** @type {string[]} */ ([]);
afterAll(async () => {
  await stopAllServers();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs python lines in nbdsh against an export; `h` is connected. */
const sh = (srv, name, lines) => ok('nbdsh', ['-u', srv.uri(name), '-c', lines.join('\n')], { env: CLIENT_ENV, timeout: 120_000 });

/**
 * A folder with an origin of `size` bytes of test data (and a copy of it) and a sparse COW of
 * `cowBytes`; `serve(extra)` starts a server with the origin device `base` and a persistent
 * snapshot `snap` (chunk 8) over them.
 */
function folder(size, cowBytes) {
  const dir = tempDir();
  dirs.push(dir);
  const base = join(dir, 'base.img'), orig = join(dir, 'orig.bin'), cow = join(dir, 'cow.img');
  const original = testBytes(size, 17);
  writeFileSync(base, original);
  writeFileSync(orig, original);
  sparseFile(cow, cowBytes);
  const sectors = size / 512;
  const serve = (/** @type {string[]} */ extra = []) => startServer([
    '--device', 'base', `0 ${sectors} snapshot-origin ${base}`,
    '--device', 'snap', `0 ${sectors} snapshot ${base} ${cow} P 8`,
    ...extra,
  ], { dir });
  return { dir, base, orig, cow, sectors, serve };
}

/**
 * Python: one connection writes, one request at a time, 700 first writes in a shuffled order
 * (some over 3 chunks, some over chunks copied before), so three metadata areas fill in part.
 */
const shuffledWrites = [
  `import random`,
  `r = random.Random(5)`,
  `chunks = list(range(0, 2000))`,
  `r.shuffle(chunks)`,
  `seen, over = set(), 0`,
  `for i, c in enumerate(chunks[:700]):`,
  `    n = 3 if i % 10 == 0 else 1`,
  `    h.pwrite(bytes([i % 251 + 1]) * (n * ${CHUNK}), c * ${CHUNK})`,
  `    over += all(k in seen for k in range(c, c + n))`,
  `    seen.update(range(c, c + n))`,
  `print(f"overwrites={over}")`,
];

describe('first writes to an origin with a persistent snapshot, copied by the receive threads', () => {
  it('take the lent chunks back before a second snapshot of the origin loads: both COWs as the core alone writes them', async () => {
    const f = folder(8 * MiB, 4 * MiB);
    const cow1 = join(f.dir, 'cow1.img');
    sparseFile(cow1, 4 * MiB);
    // At start the origin and its first snapshot are live (chunks lent) when the second loads.
    const srv = await f.serve(['--device', 'snap1', `0 ${f.sectors} snapshot ${f.base} ${cow1} PO 8`]);
    await sh(srv, 'base', ['for i in range(10):', `    h.pwrite(b"x" * ${CHUNK}, i * 16 * ${CHUNK})`, 'h.flush()']);
    // 10 chunks of data, the header and the first metadata chunk: in both.
    expect((await srv.ctl('status', 'snap')).stdout).toBe(`0 ${f.sectors} snapshot 96/8192 16\n`);
    expect((await srv.ctl('status', 'snap1')).stdout).toBe(`0 ${f.sectors} snapshot 96/8192 16\n`);
    for (const cow of [f.cow, cow1]) {
      const info = JSON.parse((await dmkit(['snapshot', 'inspect', '--json', cow])).stdout);
      expect(info.exceptions.map((/** @type {{new: number}} */ e) => e.new).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    }
    expect(srv.stderr).not.toMatch(/bug:/);
    await srv.stop();
  });

  it.skipIf(!threads)('leave the COW image byte for byte as the core leaves it', async () => {
    const SIZE = 16 * MiB;
    // The threads' server, and one whose first writes stay on the core (a second origin device
    // over the file keeps them there: thread-copies.js plan()).
    const byThreads = folder(SIZE, 8 * MiB), byCore = folder(SIZE, 8 * MiB);
    const a = await byThreads.serve();
    const b = await byCore.serve(['--device', 'base2', `0 ${byCore.sectors} snapshot-origin ${byCore.base}`]);
    const [out] = await Promise.all([sh(a, 'base', shuffledWrites), sh(b, 'base', shuffledWrites)]);
    const overwrites = Number(/overwrites=(\d+)/.exec(out)?.[1]);
    expect((await threadCounters(a, 'base')).threadWrites).toBe(700);
    // The core's server: its threads wrote only chunks copied before, and copied none.
    expect((await threadCounters(b, 'base')).threadWrites).toBe(overwrites);
    expect((await threadCounters(b, 'base')).threadCopies).toBe(0);
    const status = await usage(a);
    expect(status).toEqual(await usage(b));
    // Every chunk those writes copied, the threads copied (and committed before they answered).
    const onDisk = JSON.parse((await dmkit(['snapshot', 'inspect', '--json', byThreads.cow])).stdout).exceptions.length;
    expect(onDisk).toBeGreaterThan(700);
    expect((await threadCounters(a, 'base')).threadCopies).toBe(onDisk);
    // Answered writes are committed: the files are compared with both servers still running.
    expect(readFileSync(byThreads.cow).equals(readFileSync(byCore.cow))).toBe(true);
    expect(readFileSync(byThreads.base).equals(readFileSync(byCore.base))).toBe(true);
    // The core carries on from the threads' areas: a snapshot write (through the core) and more
    // first writes in both, then the images again.
    const more = [`h.pwrite(bytes([9]) * 512, ${3000 * CHUNK})`];
    await Promise.all([sh(a, 'snap', more), sh(b, 'snap', more)]);
    const after = [`for c in range(2100, 2400):`, `    h.pwrite(bytes([7]) * ${CHUNK}, c * ${CHUNK})`];
    await Promise.all([sh(a, 'base', after), sh(b, 'base', after)]);
    expect(await usage(a)).toEqual(await usage(b));
    expect(readFileSync(byThreads.cow).equals(readFileSync(byCore.cow))).toBe(true);
    await sh(a, 'snap', keepsOriginal(byThreads.orig, [0, 1999, 2100, 2399]));
  });

  it.skipIf(!threads)('fill the COW device at the same write as the core, with the same image, and go Invalid', async () => {
    // Room for about 4600 exceptions in 4700 chunks: the threads take the first loan of 4096, the
    // core hands out the last areas' chunks itself (the threads never write past the device's end).
    const cowBytes = 4700 * CHUNK, SIZE = 32 * MiB;
    const byThreads = folder(SIZE, cowBytes), byCore = folder(SIZE, cowBytes);
    const a = await byThreads.serve();
    const b = await byCore.serve(['--device', 'base2', `0 ${byCore.sectors} snapshot-origin ${byCore.base}`]);
    const fill = [`for c in range(0, 4800):`, `    h.pwrite(bytes([c % 251 + 1]) * ${CHUNK}, c * ${CHUNK})`];
    await Promise.all([sh(a, 'base', fill), sh(b, 'base', fill)]);
    expect((await threadCounters(a, 'base')).threadWrites).toBeGreaterThanOrEqual(4096);
    expect(await usage(a)).toBe('Invalid');
    expect(await usage(b)).toBe('Invalid');
    expect(readFileSync(byThreads.cow).equals(readFileSync(byCore.cow))).toBe(true);
    const info = JSON.parse((await dmkit(['snapshot', 'inspect', '--json', byThreads.cow])).stdout);
    expect(info.valid).toBe(false);
  });

  it.skipIf(!threads)('keep every answered write and its snapshot copy across a kill, and load the COW again', async () => {
    const f = folder(16 * MiB, 8 * MiB);
    const srv = await f.serve();
    await sh(srv, 'base', [`for c in range(0, 600):`, `    h.pwrite(bytes([3]) * ${CHUNK}, c * ${CHUNK * 2})`]);
    expect((await threadCounters(srv, 'base')).threadWrites).toBe(600);
    await srv.stop('SIGKILL'); // no flush, no clean exit
    const inspect = await dmkit(['snapshot', 'inspect', '--json', f.cow]);
    expect(inspect.code).toBe(0);
    const info = JSON.parse(inspect.stdout);
    expect(info.valid).toBe(true);
    expect(info.exceptions.length).toBe(600);
    const again = await f.serve();
    expect(await usage(again)).toEqual([(600 + 2 + 2) * 8, 16384, 4 * 8]); // header, 3 areas, 600 chunks
    await sh(again, 'snap', keepsOriginal(f.orig, [0, 2, 598, 1198, 1199]));
    await sh(again, 'base', [`for c in range(0, 600):`, `    assert h.pread(${CHUNK}, c * ${CHUNK * 2}) == bytes([3]) * ${CHUNK}, f"chunk {c * 2} lost"`]);
  });

  it.skipIf(!threads)('lend again after the core changed the exceptions, and after it did not: every exception once, on disk', async () => {
    const f = folder(16 * MiB, 8 * MiB);
    const srv = await f.serve();
    const writes = (first, n, b) => [`for c in range(${first}, ${first + n}):`, `    h.pwrite(bytes([${b}]) * ${CHUNK}, c * ${CHUNK})`];
    await sh(srv, 'base', writes(0, 300, 1));
    // The snapshot device's write takes the copies back and makes chunk 400 an exception.
    await sh(srv, 'snap', [`h.pwrite(bytes([7]) * ${CHUNK}, ${400 * CHUNK})`]);
    await new Promise((r) => setTimeout(r, 300));
    await sh(srv, 'base', writes(300, 200, 2)); // chunk 400 is copied already
    await sh(srv, 'snap', keepsOriginal(f.orig, [0, 299, 300, 499])); // copies back; nothing new
    await new Promise((r) => setTimeout(r, 300));
    await sh(srv, 'base', [...writes(0, 600, 3), 'h.flush()']);
    expect(srv.stderr).not.toMatch(/bug:/);
    expect((await threadCounters(srv, 'base')).threadCopies).toBe(599);
    await srv.stop('SIGKILL');
    const info = JSON.parse((await dmkit(['snapshot', 'inspect', '--json', f.cow])).stdout);
    expect(info.valid).toBe(true);
    expect(info.exceptions.map((e) => e.old).sort((a, b) => a - b)).toEqual(Array.from({ length: 600 }, (_, i) => i));
    const again = await f.serve();
    await sh(again, 'snap', [`assert h.pread(${CHUNK}, ${400 * CHUNK}) == bytes([7]) * ${CHUNK}`, ...keepsOriginal(f.orig, [0, 399, 401, 599])]);
  });

  it.skipIf(!threads)('under two writers, a checking reader and suspends, keep the original and count exactly the chunks that changed', async () => {
    const SIZE = 32 * MiB, SECONDS = 5;
    const f = folder(SIZE, SIZE);
    const srv = await f.serve();
    await writersReaderAndSuspends(srv, { orig: f.orig, size: SIZE, seconds: SECONDS });
    // Chunks whose bytes changed in the origin file: each must be one exception, no more, no fewer.
    const changed = changedChunks(f.base, f.orig, SIZE);
    expect(changed).toBeGreaterThan(0);
    const [allocated, total] = /** @type {number[]} */ (await usage(srv));
    const areas = Math.floor(changed / 256) + 1; // metadata areas up to the next free chunk
    expect([allocated, total]).toEqual([(1 + areas + changed) * 8, SIZE / 512]);
    const { threadWrites } = await threadCounters(srv, 'base');
    console.log(`persistent, two writers: ${changed} chunks changed, ${threadWrites} writes by the threads`);
    expect(threadWrites).toBeGreaterThan(0);
    // The image on disk says the same, and the snapshot reads the original from it after a restart.
    await srv.stop('SIGKILL');
    const info = JSON.parse((await dmkit(['snapshot', 'inspect', '--json', f.cow])).stdout);
    expect(info.valid).toBe(true);
    expect(info.exceptions.length).toBe(changed);
    const again = await f.serve();
    await sh(again, 'snap', wholeOriginal(f.orig, SIZE));
  });

  it.skipIf(!threads)('hold the original of every chunk the origin changed when killed in the middle of first writes', async () => {
    const SIZE = 128 * MiB;
    const f = folder(SIZE, SIZE);
    const srv = await f.serve();
    // Two writers over the two halves, each block once (fio's random map): every write is a
    // first write, until the kill; fio fails then, as it should.
    const fio = (offset, seed) => run('fio', ['--name=w', '--ioengine=nbd', `--uri=${srv.uri('base')}`, '--iodepth=16', '--rw=randwrite',
      '--bs=4k', `--offset=${offset}`, `--size=${SIZE / 2}`, `--randseed=${seed}`, '--output-format=terse'], { env: CLIENT_ENV, timeout: 60_000 });
    const writers = Promise.all([fio(0, 3), fio(SIZE / 2, 4)]);
    // Killed once the threads have done some (a few hundred ms of writing).
    for (let t0 = Date.now(); (await threadCounters(srv, 'base')).threadWrites < 2000;) {
      if (Date.now() - t0 > 20_000) throw new Error('the threads did not write');
      await new Promise((r) => setTimeout(r, 20));
    }
    await srv.stop('SIGKILL');
    await writers;
    const now = readFileSync(f.base), before = readFileSync(f.orig);
    const changed = [];
    for (let c = 0; c < SIZE / CHUNK; c++) if (now.compare(before, c * CHUNK, (c + 1) * CHUNK, c * CHUNK, (c + 1) * CHUNK) !== 0) changed.push(c);
    console.log(`persistent, killed: ${changed.length} of ${SIZE / CHUNK} chunks changed`);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.length).toBeLessThan(SIZE / CHUNK); // killed in the middle
    // Every chunk the origin changed has its exception on disk (an answered copy's write may not
    // have reached the origin yet: more exceptions than changes is fine, fewer is not).
    const info = JSON.parse((await dmkit(['snapshot', 'inspect', '--json', f.cow])).stdout);
    expect(info.valid).toBe(true);
    const held = new Set(info.exceptions.map((/** @type {{old: number}} */ e) => e.old));
    expect(changed.filter((c) => !held.has(c))).toEqual([]);
    const again = await f.serve();
    await sh(again, 'snap', wholeOriginal(f.orig, SIZE));
  });

  it.skipIf(!threads)('do the parked first writes of a client that hangs up right after sending them, and let a suspend finish', async () => {
    const f = folder(16 * MiB, 8 * MiB);
    const srv = await f.serve();
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    expect(await c.go('base')).toBe(1); // NBD_REP_ACK
    const burst = (first, n) => {
      const parts = [];
      for (let i = first; i < first + n; i++) parts.push(requestHeader(1, i + 1, i * 2 * CHUNK, CHUNK), Buffer.alloc(CHUNK, i % 251 + 1));
      return Buffer.concat(parts);
    };
    // 64 first writes, all answered: the thread then waits for as many before a commit.
    c.write(burst(0, 64));
    expect((await c.read(16 * 64))?.length).toBe(16 * 64);
    // 10 more and the end of the stream right after: the thread is waiting for more when it ends.
    c.sock.end(burst(64, 10));
    await c.closed();
    expect((await srv.ctl('suspend', 'base')).code).toBe(0); // waits for every request a thread took
    expect((await srv.ctl('resume', 'base')).code).toBe(0);
    expect(changedChunks(f.base, f.orig, 16 * MiB)).toBe(74);
    expect(await usage(srv)).toEqual([(1 + 1 + 74) * 8, 16384, 2 * 8]);
    await sh(srv, 'snap', keepsOriginal(f.orig, [0, 126, 128, 146, 147]));
  });
});
