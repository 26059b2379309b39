// Snapshots offline and merging, on a disk that fails (lib/faulty-fs.py: a FUSE passthrough
// that fails chosen reads, writes and fsyncs with EIO, as a disk with bad sectors does).
//
// - `dmkit snapshot inspect` of a COW device whose header or metadata area cannot be read exits
//   non-zero with one line naming the file and EIO, no stack trace.
// - `dmkit snapshot merge` whose COW data reads, origin writes, origin fsyncs or COW metadata
//   commits fail midway exits non-zero with one line naming the file and EIO (as inspect); the
//   COW device stays loadable and valid, nothing is committed as merged that did not reach the
//   origin, and the same command run again once the disk recovers finishes the merge: the origin
//   then holds exactly what the snapshot showed (docs/snapshots.md: "each step is committed only after its copy reached the
//   origin ... the same command finishes the merge").
// - A served `snapshot-merge` whose origin writes fail midway reports `Merge failed` in its
//   status line, as Linux's dm-snap.c does (merge_callback: "Write error: shutting down merge",
//   merge_failed), keeps serving the snapshot's data and taking writes, logs dm-snap's reason ("Write error:
//   shutting down merge."), the server goes on, and once the disk recovers a suspend and resume
//   (as in Linux) finishes the merge with every acknowledged write in the origin.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { tempDir, testBytes, startServer, stopAllServers, nbdsh, sparseFile, dmkit } from '../nbd/helpers.js';
import { mountFaultyDisk, unmountAllFaultyDisks } from './lib/faulty-disk.js';
import { snapshotStatus } from './lib/control.js';

const KiB = 1024, MiB = 1 << 20;
const ORIGIN = 16 * MiB;
const CHUNK = 8 * KiB; // P 16
const COW = 4 * MiB;

// Servers first (they have files open on the disks), then the disks.
afterAll(async () => { await stopAllServers(); await unmountAllFaultyDisks(); });

/**
 * The snapshot under test, built on plain files in the disk's source (nothing read through the
 * mount yet, so nothing of it is in the page cache): origin writes to chunks 0, 8, ... 248 (32
 * exceptions, COW chunks 2-33 in that order), then snapshot writes to chunks 4, 12, ... 124 (16
 * exceptions, COW chunks 34-49). Exception k lies in COW chunk 2 + k; for k < 32 its origin
 * chunk is 8k. The merge goes last committed first, one chunk a step.
 */
const ORIGIN_WRITES = Array.from({ length: 32 }, (_, i) => ({ off: i * 8 * CHUNK, byte: 0xa0 + (i % 16) }));
const SNAP_WRITES = Array.from({ length: 16 }, (_, i) => ({ off: (i * 8 + 4) * CHUNK, byte: 0xc0 + i }));
const EXCEPTIONS = ORIGIN_WRITES.length + SNAP_WRITES.length;
/** The exception the faults hit: 27 steps of the merge succeed before it. */
const MIDWAY = 20;
const MIDWAY_OLD = MIDWAY * 8, MIDWAY_NEW = 2 + MIDWAY;

/**
 * Makes origin.img and cow.img in `dir` as above; returns the paths and the snapshot's view.
 * @param {string} dir
 */
async function snapshotFiles(dir) {
  const origin = join(dir, 'origin.img'), cow = join(dir, 'cow.img');
  const before = testBytes(ORIGIN, 31);
  writeFileSync(origin, before);
  sparseFile(cow, COW);
  const srv = await startServer(['--device', 'base', `0 ${ORIGIN / 512} snapshot-origin ${origin}`,
    '--device', 'snap', `0 ${ORIGIN / 512} snapshot ${origin} ${cow} P 16`], { dir: tempDir('dmkit-failing-disk-build-') });
  await nbdsh(null, `
h = nbd.NBD(); h.connect_uri(${JSON.stringify(srv.uri('base'))})
for off, b in ${JSON.stringify(ORIGIN_WRITES.map((w) => [w.off, w.byte]))}:
    h.pwrite(bytes([b]) * ${CHUNK}, off)
h.flush(); h.shutdown()
s = nbd.NBD(); s.connect_uri(${JSON.stringify(srv.uri('snap'))})
for off, b in ${JSON.stringify(SNAP_WRITES.map((w) => [w.off, w.byte]))}:
    s.pwrite(bytes([b]) * ${CHUNK}, off)
s.flush(); s.shutdown()
`);
  expect((await srv.stop()).code).toBe(0);
  const view = Buffer.from(before); // what the snapshot shows: the origin before, plus its own writes
  for (const w of SNAP_WRITES) view.fill(w.byte, w.off, w.off + CHUNK);
  return { origin, cow, view };
}

/**
 * Runs `fn` with a faulty disk holding the snapshot's files; whatever happens, unmounts it.
 * `paths` are the files through the mount (to fail), `files` the same in the source (to check).
 */
async function onFaultyDisk(fn) {
  const disk = await mountFaultyDisk(tempDir('dmkit-failing-disk-snap-'));
  const servers = [];
  try {
    const files = await snapshotFiles(disk.source);
    const paths = { origin: join(disk.mount, 'origin.img'), cow: join(disk.mount, 'cow.img') };
    await fn({ disk, files, paths, serve: async (args) => { const s = await startServer(args, { dir: tempDir('dmkit-failing-disk-srv-') }); servers.push(s); return s; } });
  } finally {
    for (const s of servers) await s.stop();
    await disk.unmount();
  }
}

/** One line on stderr saying what failed, no stack trace. */
function expectOneCleanErrorLine(stderr) {
  expect(stderr, stderr).not.toMatch(/^\s+at /m);
  expect(stderr.trimEnd().split('\n'), stderr).toHaveLength(1);
}

/** The COW device read offline, as `inspect --json` shows it. */
async function inspectJson(cow) {
  const r = await dmkit(['snapshot', 'inspect', cow, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** A merge that failed left the COW valid, with the unmerged exceptions (the faulty one among them). */
async function expectStoppedMidway(cow) {
  const info = await inspectJson(cow);
  expect(info.valid).toBe(true);
  expect(info.exceptions.length).toBeGreaterThan(0);
  expect(info.exceptions.length).toBeLessThan(EXCEPTIONS);
  expect(info.exceptions.some((e) => e.new === MIDWAY_NEW)).toBe(true);
}

/** Once the disk recovers, the same merge finishes: the origin reads as the snapshot did. */
async function expectRedoFinishes(disk, files, paths, view) {
  disk.setFaults({});
  const r = await dmkit(['snapshot', 'merge', '--origin', paths.origin, '--cow', paths.cow, '--quiet']);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  expect(readFileSync(files.origin).equals(view)).toBe(true);
  const after = await inspectJson(paths.cow);
  expect(after).toMatchObject({ valid: true, exceptions: [] });
}

/** The merge's result: exit code 1 and, as for inspect, one line on stderr naming the file that failed and EIO. */
function expectMergeFailed(r, file) {
  expect(r.code, r.stderr).toBe(1);
  expectOneCleanErrorLine(r.stderr);
  const esc = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  expect(r.stderr).toMatch(new RegExp(`^dmkit snapshot: merge stopped by an I/O error on ${esc}: .*EIO.*run the same command again`));
}

/** `snapshot inspect` (and --json) of a COW device with these faults: exit 1, one line naming it and EIO. */
async function expectInspectFails(disk, paths, faults) {
  disk.setFaults({ 'cow.img': faults });
  for (const args of [[], ['--json']]) {
    const r = await dmkit(['snapshot', 'inspect', paths.cow, ...args]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe('');
    expectOneCleanErrorLine(r.stderr);
    expect(r.stderr).toMatch(new RegExp(`^dmkit snapshot: ${paths.cow}: .*EIO`));
  }
  expect(disk.failures().filter((l) => l.startsWith('read cow.img ')).length).toBeGreaterThan(0);
}

/**
 * `snapshot merge` with `faults` on file `name` (failing as `op`): it fails naming that file,
 * `afterwards` checks what it left in the COW device, and the same command then finishes it.
 */
async function expectMergeStopsAndRedoes({ disk, files, paths }, name, op, faults, afterwards) {
  disk.setFaults({ [name]: faults });
  const r = await dmkit(['snapshot', 'merge', '--origin', paths.origin, '--cow', paths.cow]);
  expectMergeFailed(r, join(disk.mount, name));
  expect(disk.failures().filter((l) => l.startsWith(`${op} ${name}`)).length).toBeGreaterThan(0);
  await afterwards();
  await expectRedoFinishes(disk, files, paths, files.view);
}

/** Nothing was committed as merged: the COW device is valid and holds every exception still. */
async function expectNothingMerged(cow) {
  const info = await inspectJson(cow);
  expect(info.valid).toBe(true);
  expect(info.exceptions.length).toBe(EXCEPTIONS);
}

describe('dmkit snapshot inspect, on a disk that fails', () => {
  it('a COW device whose header cannot be read: exit 1, one line naming the file and EIO, no stack trace', async () => {
    await onFaultyDisk(({ disk, paths }) => expectInspectFails(disk, paths, { read: [[0, 512]] }));
  }, 60_000);

  it('a COW device whose metadata area cannot be read: exit 1, one line naming the file and EIO, no stack trace', async () => {
    await onFaultyDisk(async ({ disk, paths }) => {
      await expectInspectFails(disk, paths, { read: [[CHUNK, CHUNK]] });
      // And merge, which reads the COW device as inspect does first, refuses the same way, writing nothing.
      const originBefore = readFileSync(join(disk.source, 'origin.img'));
      const m = await dmkit(['snapshot', 'merge', '--origin', paths.origin, '--cow', paths.cow]);
      expect(m.code, m.stderr).toBe(1);
      expectOneCleanErrorLine(m.stderr);
      expect(m.stderr).toMatch(new RegExp(`^dmkit snapshot: ${paths.cow}: .*EIO`));
      expect(readFileSync(join(disk.source, 'origin.img')).equals(originBefore)).toBe(true);
    });
  }, 60_000);
});

describe('dmkit snapshot merge, on a disk that fails', () => {
  it("the COW device's data chunk failing to read midway: exit 1 with one line naming the file and EIO, the COW stays valid with the rest unmerged, and the same merge finishes once the disk recovers", async () => {
    await onFaultyDisk((t) => expectMergeStopsAndRedoes(t, 'cow.img', 'read', { read: [[MIDWAY_NEW * CHUNK, CHUNK]] },
      () => expectStoppedMidway(t.paths.cow)));
  }, 60_000);

  it("the origin's write failing midway: exit 1 with one line naming the file and EIO, the COW stays valid with the rest unmerged, and the same merge finishes once the disk recovers", async () => {
    await onFaultyDisk((t) => expectMergeStopsAndRedoes(t, 'origin.img', 'write', { write: [[MIDWAY_OLD * CHUNK, CHUNK]] },
      () => expectStoppedMidway(t.paths.cow)));
  }, 60_000);

  it("the origin's fsync failing: exit 1 with one line naming the file and EIO, nothing committed as merged, and the same merge finishes once the disk recovers", async () => {
    // The first step's copy never reached the disk for sure: it must not be committed.
    await onFaultyDisk((t) => expectMergeStopsAndRedoes(t, 'origin.img', 'fsync', { fsync: true }, () => expectNothingMerged(t.paths.cow)));
  }, 60_000);

  it("the COW device's metadata area write failing (the merge's commit): exit 1 with one line naming the file and EIO, the COW stays valid with nothing committed as merged, and the same merge finishes once the disk recovers", async () => {
    await onFaultyDisk((t) => expectMergeStopsAndRedoes(t, 'cow.img', 'write', { write: [[CHUNK, CHUNK]] }, () => expectNothingMerged(t.paths.cow)));
  }, 60_000);
});

describe('a served snapshot-merge, on a disk that fails', () => {
  it("its origin's write failing midway: status 'Merge failed', reads still show the snapshot, writes are taken, the server goes on; once the disk recovers, suspend and resume finish the merge with every acknowledged write", async () => {
    await onFaultyDisk(async ({ disk, files, paths, serve }) => {
      disk.setFaults({ 'origin.img': { write: [[MIDWAY_OLD * CHUNK, CHUNK]] } }); // before the merge starts at resume
      const srv = await serve(['--device', 'm', `0 ${ORIGIN / 512} snapshot-merge ${paths.origin} ${paths.cow} P 16`]);
      const t0 = Date.now();
      let word = '';
      while (Date.now() - t0 < 20_000) {
        const s = await srv.ctl('status', 'm');
        expect(s.code, s.stderr).toBe(0);
        word = snapshotStatus(s.stdout).word;
        if (word === 'Merge failed') break;
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(word).toBe('Merge failed');
      expect(disk.failures().filter((l) => l.startsWith('write origin.img ')).length).toBeGreaterThan(0);
      // The log says why, in dm-snap's words (its status line keeps only "Merge failed").
      await srv.waitLog(/^dmkit: device m: snapshot-merge: Write error: shutting down merge\.$/m);
      // Reads show the snapshot; writes (to an unmerged chunk with an exception, to the chunk whose
      // merge failed and its neighbour, to chunks with none) are acknowledged and read back.
      const view = Buffer.from(files.view);
      const writes = [[5 * 8 * CHUNK, 0x51], [MIDWAY_OLD * CHUNK, 0x55], [(MIDWAY_OLD + 1) * CHUNK, 0x52], [3 * CHUNK, 0x53], [ORIGIN - CHUNK, 0x54]];
      await nbdsh(srv.uri('m'), `
import hashlib
got = b''.join(h.pread(${MiB}, off) for off in range(0, ${ORIGIN}, ${MiB}))
assert hashlib.sha256(got).hexdigest() == ${JSON.stringify(sha256(view))}, 'the snapshot view after the failed merge'
for off, b in ${JSON.stringify(writes)}:
    h.pwrite(bytes([b]) * ${CHUNK}, off)
h.flush()
for off, b in ${JSON.stringify(writes)}:
    assert h.pread(${CHUNK}, off) == bytes([b]) * ${CHUNK}, ('read back', off)
`);
      for (const [off, b] of writes) view.fill(b, off, off + CHUNK);
      expect(srv.proc.exitCode).toBe(null);
      expect((await srv.ctl('status', 'm')).stdout).toMatch(/ snapshot-merge Merge failed\s*$/);
      // The disk recovers; as in Linux, suspend and resume start the merge again (its status
      // keeps saying Merge failed until a new table is loaded): it merges the rest.
      disk.setFaults({});
      for (const verb of ['suspend', 'resume']) {
        const r = await srv.ctl(verb, 'm');
        expect(r.code, r.stderr).toBe(0);
      }
      const t1 = Date.now();
      while ((await inspectJson(paths.cow)).exceptions.length > 0) {
        expect(Date.now() - t1, 'the merge finishes after suspend and resume').toBeLessThan(20_000);
        await new Promise((res) => setTimeout(res, 50));
      }
      expect((await srv.stop()).code).toBe(0);
      expect(readFileSync(files.origin).equals(view)).toBe(true);
      await expectRedoFinishes(disk, files, paths, view); // offline: nothing left to merge
    });
  }, 90_000);
});

/** @param {Buffer} buf */
function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}
