// A backing file on a disk that fails: `dmkit serve` over image files on a FUSE file system
// (lib/faulty-fs.py) that fails chosen reads, writes and fsyncs with EIO, as a disk with bad
// sectors does. Each failure must reach the real client (nbdsh, python3-libnbd) as an NBD error
// reply with EIO, on every I/O path (simple and structured replies, small reads and the large
// ones sent from files or mappings, the receive threads and the event loop); the connection, the
// other connections and the server go on, and every byte a client reads back is the file's.
// Persistent snapshots whose COW file or origin fails behave as Linux's dm-snapshot: the
// snapshot is invalidated, the origin's writes go ahead.
//
// Why FUSE: the error and flakey targets fail I/O above the host (faults.test.js); only a file
// system that fails makes the server's own pread, pwrite, fdatasync and mapped pages fail, as
// they do on a dying disk. FUSE does it without root-only block devices or a VM.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, testBytes, startServer, stopAllServers, nbdsh, sparseFile, threadCounters } from '../nbd/helpers.js';
import { mountFaultyDisk, unmountAllFaultyDisks } from './lib/faulty-disk.js';
import { snapshotStatus } from './lib/control.js';

const KiB = 1024, MiB = 1 << 20;
const IMAGE = 64 * MiB;

// Servers first (they have files open on the disks), then the disks.
afterAll(async () => { await stopAllServers(); await unmountAllFaultyDisks(); });

/**
 * Runs `fn` with a faulty disk mounted in a fresh temp dir and `serve` to start servers there;
 * whatever happens, stops those servers, then unmounts the disk.
 * @param {(t: {dir: string, disk: import('./lib/faulty-disk.js').FaultyDisk, serve: (args: string[]) => ReturnType<typeof startServer>}) => Promise<void>} fn
 */
async function onFaultyDisk(fn) {
  const dir = tempDir('dmkit-failing-disk-');
  const disk = await mountFaultyDisk(dir);
  const servers = [];
  try {
    await fn({ dir, disk, serve: async (args) => { const s = await startServer(args, { dir }); servers.push(s); return s; } });
  } finally {
    for (const s of servers) await s.stop();
    await disk.unmount();
  }
}

/** Writes a 64 MiB image of test bytes into the disk's source; returns its path there (to check against) and on the disk (to serve). */
function imageOn(disk, name = 'd.img', seed = 21) {
  writeFileSync(join(disk.source, name), testBytes(IMAGE, seed));
  return { expected: join(disk.source, name), served: join(disk.mount, name) };
}

/** A linear device over all of an image. */
const linear = (name, path) => ['--device', name, `0 ${IMAGE / 512} linear ${path} 0`];

/** Python for nbdsh: the expected bytes, a client, and a check that a request fails with EIO. */
const PRELUDE = (expected) => `
import errno
data = bytearray(open(${JSON.stringify(expected)}, 'rb').read())
def client(uri, structured=True):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    h.connect_uri(uri)
    return h
def fails_eio(what, f):
    try:
        f()
    except nbd.Error as e:
        assert e.errnum == errno.EIO, (what, e)
        return
    raise AssertionError(f'{what} succeeded on the failing disk')
def reads_good(h, ranges):
    for n, off in ranges:
        assert h.pread(n, off) == data[off:off + n], ('good read', n, off)
`;

/** Every connection the server closed, it closed because its client went: none broke off. */
function expectOnlyClientDisconnects(stderr) {
  const closes = [...stderr.matchAll(/^dmkit: connection \d+ \(\w+\) closed: (.*?)(?: \[|$)/gm)].map((m) => m[1]);
  expect(closes.length).toBeGreaterThan(0);
  expect(closes.filter((why) => !['client sent NBD_CMD_DISC', 'client disconnected'].includes(why))).toEqual([]);
}

// Reads that touch a failing range: a small bad range that each read straddles or ends in,
// and a large one each lies inside. The good ranges are far from both.
const SMALL_BAD = 24 * MiB, SMALL_BAD_LEN = 8 * KiB;
const LARGE_BAD = 40 * MiB, LARGE_BAD_LEN = 12 * MiB;
const READ_FAULTS = { read: [[SMALL_BAD, SMALL_BAD_LEN], [LARGE_BAD, LARGE_BAD_LEN]] };
/** [length, offset] of failing reads of each size. */
function badReads(sizes) {
  return sizes.flatMap((n, i) => [
    [n, n <= 4 * KiB ? SMALL_BAD + 4 * KiB : SMALL_BAD - n / 2], // straddles the small range
    [n, n <= 4 * KiB ? SMALL_BAD : SMALL_BAD - n + 4 * KiB], // ends in it
    [n, LARGE_BAD + i * MiB + 4 * KiB], // inside the large range
  ]);
}
const GOOD_READS = [[4 * KiB, 0], [64 * KiB, MiB], [256 * KiB, 2 * MiB + 512], [2 * MiB, 4 * MiB], [4 * MiB, 8 * MiB]];

/**
 * Serves an image whose reads fail in READ_FAULTS; each bad read gets EIO with simple and with
 * structured replies, the same connection then reads the good ranges exactly, and a second
 * client connected all along is unaffected.
 */
async function readErrorsCase(sizes, serveArgs) {
  await onFaultyDisk(async ({ disk, serve }) => {
    const img = imageOn(disk);
    disk.setFaults({ 'd.img': READ_FAULTS }); // before the server reads anything: nothing cached
    const srv = await serve([...serveArgs, ...linear('d', img.served)]);
    const uri = JSON.stringify(srv.uri('d'));
    await nbdsh(null, `${PRELUDE(img.expected)}
other = client(${uri})
reads_good(other, ${JSON.stringify(GOOD_READS.slice(0, 2))})
for structured in (False, True):
    h = client(${uri}, structured)
    for n, off in ${JSON.stringify(badReads(sizes))}:
        fails_eio(f'a read of {n} at {off} (structured: {structured})', lambda: h.pread(n, off))
        reads_good(h, ${JSON.stringify(GOOD_READS)})
    h.shutdown()
    reads_good(other, ${JSON.stringify(GOOD_READS)})
other.shutdown()
`);
    expect(disk.failures().filter((l) => l.startsWith('read d.img ')).length).toBeGreaterThan(0);
    // The path under test answered the reads: the receive threads and the file mapping, or the event loop alone.
    const c = await threadCounters(srv, 'd');
    const paths = `${JSON.stringify(c)}\n${srv.stderr.split('\n').filter((l) => /native addon/.test(l)).join('\n')}`;
    if (serveArgs.includes('--loop-receive')) expect(c.threadReads === 0 && c.sentFromFiles > 0, paths).toBe(true);
    else expect(c.threadReads > 0 && c.mappedReads > 0, paths).toBe(true);
    expect(srv.stderr).toMatch(/^dmkit: I\/O error on \S*d\.img: .*\(EIO\)/m);
    // Reads of 128 KiB and more are checked before sendfile (readable.h): a failure there is the file's I/O error too.
    expect(srv.stderr).toMatch(/^dmkit: I\/O error on \S*d\.img: read of the file's pages before sending them: .*\(EIO\)/m);
    expectOnlyClientDisconnects(srv.stderr);
    expect(srv.proc.exitCode).toBe(null);
    expect((await srv.stop()).code).toBe(0);
  });
}

describe('a backing file on a disk that fails', () => {
  it('reads of 4 KiB, 64 KiB, 256 KiB, 2 MiB and 4 MiB touching a failing range get EIO with either reply style; the connection then reads good ranges exactly, a second client is unaffected, the server logs the I/O error and exits 0', async () => {
    await readErrorsCase([4 * KiB, 64 * KiB, 256 * KiB, 2 * MiB, 4 * MiB], []);
  }, 60_000);

  it('with --loop-receive (every request on the event loop): reads of 64 KiB and 256 KiB touching a failing range get EIO, the connection goes on', async () => {
    await readErrorsCase([64 * KiB, 256 * KiB], ['--loop-receive']);
  }, 60_000);

  it('writes of 4 KiB, 64 KiB, 256 KiB and 2 MiB+4 KiB over a failing range get EIO; writes elsewhere succeed and read back; once the fault is lifted the range takes writes again', async () => {
    await onFaultyDisk(async ({ disk, serve }) => {
      const img = imageOn(disk);
      const W = 24 * MiB;
      disk.setFaults({ 'd.img': { write: [[W, 8 * KiB]] } });
      const srv = await serve(linear('d', img.served));
      const uri = JSON.stringify(srv.uri('d'));
      const badWrites = [[4 * KiB, W + 4 * KiB], [64 * KiB, W - 32 * KiB], [256 * KiB, W - 128 * KiB], [2 * MiB + 4 * KiB, W - MiB]];
      // Every failing write lies in [W - 1 MiB, W + 1 MiB + 4 KiB): rewritten whole at the end.
      const [REWRITE_AT, REWRITE_LEN] = [W - MiB, 2 * MiB + 4 * KiB];
      await nbdsh(null, `${PRELUDE(img.expected)}
import os
for structured in (False, True):
    h = client(${uri}, structured)
    for i, (n, off) in enumerate(${JSON.stringify(badWrites)}):
        fails_eio(f'a write of {n} at {off} (structured: {structured})', lambda: h.pwrite(os.urandom(n), off))
        # Elsewhere: written, and read back on the same connection.
        good = bytes([i + 1 + 16 * structured]) * n
        at = ${4 * MiB} + i * ${4 * MiB} + structured * ${2 * MiB}
        h.pwrite(good, at)
        data[at:at + n] = good
        assert h.pread(n, at) == good, ('read back', n, at)
    h.flush()
    h.shutdown()
h = client(${uri})
for off in range(0, ${IMAGE}, ${4 * MiB}):
    if not ${REWRITE_AT} - ${4 * MiB} < off < ${REWRITE_AT + REWRITE_LEN}:
        assert h.pread(${4 * MiB}, off) == data[off:off + ${4 * MiB}], ('unchanged or written', off)
`);
      expect(disk.failures().filter((l) => l.startsWith('write d.img ')).length).toBeGreaterThan(0);
      disk.setFaults({});
      await nbdsh(null, `${PRELUDE(img.expected)}
h = client(${uri})
new = bytes(range(256)) * (${REWRITE_LEN} // 256)
h.pwrite(new, ${REWRITE_AT})
h.flush()
assert h.pread(${REWRITE_LEN}, ${REWRITE_AT}) == new
data[${REWRITE_AT}:${REWRITE_AT + REWRITE_LEN}] = new
`);
      // The file holds what the clients were told was written.
      const file = readFileSync(img.expected);
      const rewritten = Buffer.from(Array.from({ length: REWRITE_LEN }, (_, i) => i & 255));
      expect(file.subarray(REWRITE_AT, REWRITE_AT + REWRITE_LEN).equals(rewritten)).toBe(true);
      expect(srv.stderr).toMatch(/^dmkit: I\/O error on \S*d\.img: .*\(EIO\)/m);
      expectOnlyClientDisconnects(srv.stderr);
      expect((await srv.stop()).code).toBe(0);
    });
  }, 60_000);

  it('while fsync fails, FLUSH and a FUA write get EIO; once it recovers FLUSH succeeds and the data reads back', async () => {
    await onFaultyDisk(async ({ disk, serve }) => {
      const img = imageOn(disk);
      const srv = await serve(linear('d', img.served));
      const uri = JSON.stringify(srv.uri('d'));
      const fua = Buffer.alloc(4 * KiB, 0xf1);
      await nbdsh(null, `${PRELUDE(img.expected)}
import os, json
h = client(${uri})
h.pwrite(b'a' * 65536, ${MiB})
h.flush()
def faults(f):
    open(${JSON.stringify(join(disk.source, '.faults.json.tmp'))}, 'w').write(json.dumps(f))
    os.rename(${JSON.stringify(join(disk.source, '.faults.json.tmp'))}, ${JSON.stringify(join(disk.source, '.faults.json'))})
faults({'d.img': {'fsync': True}})
h.pwrite(b'b' * 65536, ${2 * MiB})
fails_eio('FLUSH', lambda: h.flush())
fails_eio('a FUA write', lambda: h.pwrite(b'\\xf1' * 4096, ${3 * MiB}, nbd.CMD_FLAG_FUA))
faults({})
h.flush()
assert h.pread(65536, ${MiB}) == b'a' * 65536
assert h.pread(65536, ${2 * MiB}) == b'b' * 65536
assert h.pread(4096, ${3 * MiB}) == b'\\xf1' * 4096
reads_good(h, [(65536, 0), (65536, ${8 * MiB})])
h.shutdown()
`);
      expect(disk.failures().filter((l) => l.startsWith('fsync d.img')).length).toBeGreaterThanOrEqual(2);
      // The writes went by the receive thread: the failed FLUSH proves the thread counted its write
      // before the client's FLUSH came (a flush finding nothing written since the last fdatasync skips it).
      expect((await threadCounters(srv, 'd')).threadWrites).toBeGreaterThanOrEqual(2);
      const file = readFileSync(img.expected);
      expect(file.subarray(3 * MiB, 3 * MiB + 4 * KiB).equals(fua)).toBe(true);
      expect(srv.stderr).toMatch(/^dmkit: I\/O error on \S*d\.img: .*(fdatasync|fsync).*\(EIO\)/m);
      expectOnlyClientDisconnects(srv.stderr);
      expect((await srv.stop()).code).toBe(0);
    });
  }, 60_000);
});

/** The status word of a snapshot ('' while valid: "<allocated>/<total> <metadata>"). */
async function statusWord(srv, name) {
  const r = await srv.ctl('status', name);
  expect(r.code).toBe(0);
  return snapshotStatus(r.stdout).word;
}

/** Python: first writes to each chunk at `offsets` through the origin device, which succeed and read back. */
const originWrites = (uri, offsets) => `
h = client(${JSON.stringify(uri)})
for i, off in enumerate(${JSON.stringify(offsets)}):
    new = bytes([0x40 + i]) * 8192
    h.pwrite(new, off)
    data[off:off + 8192] = new
h.flush()
for off in ${JSON.stringify(offsets)}:
    assert h.pread(8192, off) == data[off:off + 8192], ('origin read back', off)
reads_good(h, [(65536, 0), (262144, ${8 * MiB})])
h.shutdown()
`;

describe('a persistent snapshot over a disk that fails', () => {
  it("its COW file on the disk, fsync failing: the origin's first writes succeed, the snapshot becomes Invalid (its metadata commit failed) and fails I/O", async () => {
    await onFaultyDisk(async ({ dir, disk, serve }) => {
      const origin = join(dir, 'origin.img');
      writeFileSync(origin, testBytes(IMAGE, 22));
      sparseFile(join(disk.source, 'cow.img'), 16 * MiB);
      const cow = join(disk.mount, 'cow.img');
      const srv = await serve(['--device', 'base', `0 ${IMAGE / 512} snapshot-origin ${origin}`,
        '--device', 'snap', `0 ${IMAGE / 512} snapshot ${origin} ${cow} P 16`]);
      expect(await statusWord(srv, 'snap')).toBe('');
      disk.setFaults({ 'cow.img': { fsync: true } });
      await nbdsh(null, `${PRELUDE(origin)}${originWrites(srv.uri('base'), [4 * MiB, 4 * MiB + 65536, 20 * MiB])}
s = client(${JSON.stringify(srv.uri('snap'))})
fails_eio('a read of the invalid snapshot', lambda: s.pread(4096, 0))
s.shutdown()
`);
      expect(disk.failures().filter((l) => l.startsWith('fsync cow.img')).length).toBeGreaterThan(0);
      expect(await statusWord(srv, 'snap')).toBe('Invalid');
      await srv.waitLog(/device snap: event 1, status now: 0 \d+ snapshot Invalid/);
      disk.setFaults({}); // the disk recovers: the server flushes at exit
      expectOnlyClientDisconnects(srv.stderr);
      expect((await srv.stop()).code).toBe(0);
    });
  }, 60_000);

  it("its origin on the disk, a chunk's read failing under a first write's copy: the snapshot is invalidated (EIO for its reads), the origin write goes ahead", async () => {
    await onFaultyDisk(async ({ dir, disk, serve }) => {
      const img = imageOn(disk, 'origin.img', 23);
      const BAD_CHUNK = 4 * MiB; // chunks of 8 KiB (P 16)
      disk.setFaults({ 'origin.img': { read: [[BAD_CHUNK, 8 * KiB]] } });
      const cow = join(dir, 'cow.img');
      sparseFile(cow, 16 * MiB);
      const srv = await serve(['--device', 'base', `0 ${IMAGE / 512} snapshot-origin ${img.served}`,
        '--device', 'snap', `0 ${IMAGE / 512} snapshot ${img.served} ${cow} P 16`]);
      expect(await statusWord(srv, 'snap')).toBe('');
      // The write covers its whole chunk: only the copy reads the failing range.
      await nbdsh(null, `${PRELUDE(img.expected)}${originWrites(srv.uri('base'), [BAD_CHUNK, 20 * MiB])}
s = client(${JSON.stringify(srv.uri('snap'))})
fails_eio('a read of the invalid snapshot', lambda: s.pread(4096, ${20 * MiB}))
s.shutdown()
`);
      expect(disk.failures().filter((l) => l.startsWith('read origin.img ')).length).toBeGreaterThan(0);
      expect(await statusWord(srv, 'snap')).toBe('Invalid');
      await srv.waitLog(/device snap: event 1, status now: 0 \d+ snapshot Invalid/);
      expect(readFileSync(img.expected).subarray(BAD_CHUNK, BAD_CHUNK + 8 * KiB).equals(Buffer.alloc(8 * KiB, 0x40))).toBe(true);
      expectOnlyClientDisconnects(srv.stderr);
      expect((await srv.stop()).code).toBe(0);
    });
  }, 60_000);
});
