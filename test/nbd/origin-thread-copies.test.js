// @ts-check
// First writes to an origin whose one snapshot is transient go by the connection's receive
// thread, which copies the chunk into a COW chunk the core lent it (host-nbd/engine/
// thread-copies.js). What the snapshot sees, and what its status line counts, must be what the
// core's own copies give: the old bytes in every chunk written, one COW chunk per chunk copied
// however many writes race for it, none counted that holds nothing, and the COW device full
// at the same write as Linux's.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadReceiveThreads } from '../../host-nbd/server/receive-threads.js';
import { writersReaderAndSuspends, changedChunks, snapshotUsage, keepsOriginal, wholeOriginal } from './thread-copy-checks.js';
import { tempDir, testBytes, startServer, stopAllServers, ok, CLIENT_ENV, sparseFile, threadCounters } from './helpers.js';

const MiB = 1 << 20;
const CHUNK = 4096; // chunk size 8 sectors
const { threads, why } = loadReceiveThreads();
if (!threads) console.warn(`origin thread-copy tests skipped: the native addon is not built (${why}); run npm run build:addon`);

const dirs = /** @type {string[]} */ ([]);
afterAll(async () => {
  await stopAllServers();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs python lines in nbdsh against an export; `h` is connected. */
const sh = (srv, name, lines) => ok('nbdsh', ['-u', srv.uri(name), '-c', lines.join('\n')], { env: CLIENT_ENV });

/** An origin of `size` bytes of test data with one transient snapshot (chunk 8) on a sparse COW of `cowBytes`. */
async function originWithSnapshot(size, cowBytes) {
  const dir = tempDir();
  dirs.push(dir);
  const base = join(dir, 'base.img'), orig = join(dir, 'orig.bin');
  const original = testBytes(size, 11);
  writeFileSync(base, original);
  writeFileSync(orig, original);
  sparseFile(join(dir, 'cow.img'), cowBytes);
  const sectors = size / 512;
  const srv = await startServer([
    '--device', 'base', `0 ${sectors} snapshot-origin ${base}`,
    '--device', 'snap', `0 ${sectors} snapshot ${base} ${join(dir, 'cow.img')} N 8`,
  ], { dir });
  return { srv, orig, sectors };
}

/** The snapshot's status line's allocation: [sectors allocated, total sectors] (a transient store has no metadata), or 'Invalid'. */
async function usage(srv) {
  const u = await snapshotUsage(srv);
  if (u === 'Invalid') return u;
  expect(u[2]).toBe(0);
  return u.slice(0, 2);
}

describe('first writes to an origin copied by the receive threads', () => {
  it.skipIf(!threads)('copy each chunk once, keep the old bytes for the snapshot, and count what the core would', async () => {
    const { srv, orig } = await originWithSnapshot(16 * MiB, 8 * MiB);
    // Chunks 0, 2 and 5, then one write over chunks 7 to 9, then chunk 2 again (an overwrite).
    await sh(srv, 'base', [
      `h.pwrite(bytes([1]) * ${CHUNK}, 0)`, `h.pwrite(bytes([2]) * ${CHUNK}, ${2 * CHUNK})`,
      `h.pwrite(bytes([3]) * ${CHUNK}, ${5 * CHUNK})`, `h.pwrite(bytes([4]) * ${3 * CHUNK}, ${7 * CHUNK})`,
      `h.pwrite(bytes([5]) * ${CHUNK}, ${2 * CHUNK})`,
      `assert h.pread(${CHUNK}, ${2 * CHUNK}) == bytes([5]) * ${CHUNK}`,
      `assert h.pread(${3 * CHUNK}, ${7 * CHUNK}) == bytes([4]) * ${3 * CHUNK}`,
    ]);
    expect((await threadCounters(srv, 'base')).threadWrites).toBe(5);
    expect(await usage(srv)).toEqual([6 * 8, 16384]); // chunks 0, 2, 5, 7, 8 and 9
    await sh(srv, 'snap', keepsOriginal(orig, [0, 1, 2, 5, 7, 8, 9, 10]));
  });

  it.skipIf(!threads)('take the copies back before the snapshot is read, and lend them again after', async () => {
    const { srv, orig } = await originWithSnapshot(16 * MiB, 8 * MiB);
    const writes = (first, n, b) => [`for c in range(${first}, ${first + n}):`, `    h.pwrite(bytes([${b}]) * ${CHUNK}, c * ${CHUNK})`];
    await sh(srv, 'base', writes(0, 64, 1));
    // The snapshot's reads go through the core: the threads' copies are folded in first.
    await sh(srv, 'snap', keepsOriginal(orig, [0, 31, 63, 64]));
    expect(await usage(srv)).toEqual([64 * 8, 16384]);
    await new Promise((r) => setTimeout(r, 300)); // the snapshot quiet: copies are lent again
    await sh(srv, 'base', writes(100, 64, 2));
    expect((await threadCounters(srv, 'base')).threadWrites).toBe(128);
    expect(await usage(srv)).toEqual([128 * 8, 16384]);
    await sh(srv, 'snap', keepsOriginal(orig, [100, 163]));
  });

  it.skipIf(!threads)('read the snapshot\'s chunks again when the core changed them while the copies were back', async () => {
    const { srv, orig } = await originWithSnapshot(16 * MiB, 8 * MiB);
    const writes = (first, n, b) => [`for c in range(${first}, ${first + n}):`, `    h.pwrite(bytes([${b}]) * ${CHUNK}, c * ${CHUNK})`];
    await sh(srv, 'base', writes(0, 64, 1));
    // A write to the snapshot device takes the copies back (the claims are kept under the
    // exceptions' tag), then the core makes chunk 100 an exception: the tag changes.
    await sh(srv, 'snap', [`h.pwrite(bytes([7]) * ${CHUNK}, ${100 * CHUNK})`]);
    await new Promise((r) => setTimeout(r, 300)); // the snapshot quiet: copies are lent again
    // Chunk 100 is the snapshot's already: the threads must not copy it again; 101 is new.
    await sh(srv, 'base', [...writes(100, 2, 2), ...writes(0, 64, 3)]);
    expect(await usage(srv)).toEqual([66 * 8, 16384]);
    expect((await threadCounters(srv, 'base')).threadWrites).toBeGreaterThanOrEqual(65);
    await sh(srv, 'snap', [
      `assert h.pread(${CHUNK}, ${100 * CHUNK}) == bytes([7]) * ${CHUNK}`, ...keepsOriginal(orig, [0, 63, 101]),
    ]);
    expect(srv.stderr).not.toMatch(/bug:/);
    // Nothing changed since: the next loan reuses the claims, and a chunk copied stays copied once.
    await new Promise((r) => setTimeout(r, 300));
    await sh(srv, 'base', writes(0, 128, 4));
    expect(await usage(srv)).toEqual([(66 + 62) * 8, 16384]); // chunks 64 to 127 but 100 and 101
    expect(srv.stderr).not.toMatch(/bug:/);
  });

  it.skipIf(!threads)('keep the old bytes in the snapshot for a reader that reads it while they copy', async () => {
    const { srv, orig } = await originWithSnapshot(16 * MiB, 8 * MiB);
    const writer = sh(srv, 'base', [`for c in range(0, 2048):`, `    h.pwrite(bytes([1]) * ${CHUNK}, c * ${CHUNK})`]);
    // Reads chunks the writer has just written, again and again, until it is done.
    const reader = sh(srv, 'snap', [
      `orig = open(${JSON.stringify(orig)}, "rb").read()`,
      `import random, time`,
      `b = nbd.NBD()`,
      `b.connect_uri(${JSON.stringify(srv.uri('base'))})`,
      `t = time.time()`,
      `while time.time() - t < 3:`,
      // The writer's last chunk, about (binary search; the snapshot must hold the old bytes anyway).
      `    lo, hi = 0, 2047`,
      `    while lo < hi:`,
      `        mid = (lo + hi + 1) // 2`,
      `        lo, hi = (mid, hi) if b.pread(${CHUNK}, mid * ${CHUNK}) == bytes([1]) * ${CHUNK} else (lo, mid - 1)`,
      `    top = lo`,
      `    for c in range(max(0, top - 8), top + 1):`,
      `        assert h.pread(${CHUNK}, c * ${CHUNK}) == orig[c * ${CHUNK}:(c + 1) * ${CHUNK}], f"chunk {c} changed"`,
      `    if top == 2047: break`,
    ]);
    await Promise.all([writer, reader]);
    expect(await usage(srv)).toEqual([2048 * 8, 16384]);
  });

  it.skipIf(!threads)('under two writers, a checking reader and suspends, keep the original in the snapshot and count exactly the chunks that changed', async () => {
    const SIZE = 64 * MiB, SECONDS = 6;
    const { srv, orig } = await originWithSnapshot(SIZE, SIZE);
    const base = join(srv.dir, 'base.img');
    await writersReaderAndSuspends(srv, { orig, size: SIZE, seconds: SECONDS });
    // Chunks whose bytes changed in the origin file: each must be one exception, no more, no fewer.
    const changed = changedChunks(base, orig, SIZE);
    expect(changed).toBeGreaterThan(0);
    expect(await usage(srv)).toEqual([changed * 8, SIZE / 512]);
    await sh(srv, 'snap', wholeOriginal(orig, SIZE));
    expect((await threadCounters(srv, 'base')).threadWrites).toBeGreaterThan(0);
  });

  it.skipIf(!threads)('leave one copy of each chunk when two connections write the same chunks at once', async () => {
    const { srv, orig } = await originWithSnapshot(16 * MiB, 8 * MiB);
    const writer = (first, b) => sh(srv, 'base', [
      `for c in range(${first}, ${first + 256}):`, `    h.pwrite(bytes([${b}]) * ${CHUNK}, c * ${CHUNK})`,
    ]);
    // Both write the same 256 chunks in the same order: each chunk is raced for.
    await Promise.all([writer(0, 1), writer(0, 2)]);
    const { threadWrites } = await threadCounters(srv, 'base');
    console.log(`two writers racing: ${threadWrites} of 512 writes by the threads`);
    expect(threadWrites).toBeGreaterThan(0);
    expect(await usage(srv)).toEqual([256 * 8, 16384]);
    await sh(srv, 'snap', keepsOriginal(orig, [0, 127, 128, 200, 255, 256]));
    await sh(srv, 'base', [
      `for c in range(0, 256):`,
      `    d = h.pread(${CHUNK}, c * ${CHUNK})`,
      `    assert d in (bytes([1]) * ${CHUNK}, bytes([2]) * ${CHUNK}), f"chunk {c} holds neither write"`,
    ]);
  });

  it.skipIf(!threads)('give the unused chunks back at a suspend', async () => {
    const { srv, orig } = await originWithSnapshot(16 * MiB, 8 * MiB);
    await sh(srv, 'base', [`for c in range(0, 10):`, `    h.pwrite(bytes([1]) * ${CHUNK}, c * ${CHUNK})`]);
    expect((await srv.ctl('suspend', 'base')).code).toBe(0);
    expect((await srv.ctl('resume', 'base')).code).toBe(0);
    expect(await usage(srv)).toEqual([10 * 8, 16384]);
    await sh(srv, 'base', [`for c in range(20, 30):`, `    h.pwrite(bytes([2]) * ${CHUNK}, c * ${CHUNK})`]);
    expect(await usage(srv)).toEqual([20 * 8, 16384]);
    await sh(srv, 'snap', keepsOriginal(orig, [0, 9, 20, 29]));
  });

  it.skipIf(!threads)('leave first writes to the core when a second origin device maps the same file', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const base = join(dir, 'base.img');
    writeFileSync(base, testBytes(4 * MiB, 3));
    sparseFile(join(dir, 'cow.img'), 4 * MiB);
    const sectors = (4 * MiB) / 512;
    const srv = await startServer([
      '--device', 'base', `0 ${sectors} snapshot-origin ${base}`,
      '--device', 'base2', `0 ${sectors} snapshot-origin ${base}`,
      '--device', 'snap', `0 ${sectors} snapshot ${base} ${join(dir, 'cow.img')} N 8`,
    ], { dir });
    await sh(srv, 'base', [`for c in range(0, 8):`, `    h.pwrite(bytes([1]) * ${CHUNK}, c * ${CHUNK})`]);
    expect((await threadCounters(srv, 'base')).threadWrites).toBe(0);
    expect(await usage(srv)).toEqual([8 * 8, 8192]);
  });

  it.skipIf(!threads)('fill the COW device at the same write as Linux: every chunk it holds, then Invalid', async () => {
    // Room for 4112 chunks: one loan of 4096 and a few more the core hands out itself.
    const room = 4112;
    const { srv } = await originWithSnapshot(32 * MiB, room * CHUNK);
    await sh(srv, 'base', [`for c in range(0, ${room}):`, `    h.pwrite(bytes([1]) * ${CHUNK}, c * ${CHUNK})`]);
    expect(await usage(srv)).toEqual([room * 8, room * 8]);
    // The threads copied the 4096 chunks of the loan; too few were left for another.
    expect((await threadCounters(srv, 'base')).threadWrites).toBe(4096);
    await sh(srv, 'base', [`h.pwrite(bytes([2]) * ${CHUNK}, ${room * CHUNK})`]);
    expect(await usage(srv)).toBe('Invalid');
  });
});
