// @ts-check
// A thread per connection reads the socket and does plain writes itself (receive threads,
// host-nbd/server/receive-threads.js). What a client sees must not change: the bytes land where
// the table maps them, writes the thread may not do go through the event loop in stream order,
// suspend holds every write (the thread's included) and a reload takes effect at resume, stream
// damage or a half-sent write cost only that connection, and a FLUSH covers the thread's writes.
import { describe, it, expect, afterAll, vi } from 'vitest';
import { writeFileSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { NbdServer } from '../../host-nbd/server/server.js';
import { loadReceiveThreads } from '../../host-nbd/server/receive-threads.js';
import { tempDir as newTempDir, testBytes, startServer, stopAllServers, ok, CLIENT_ENV, sparseFile, threadCounters, nbdsh } from './helpers.js';
import { RawClient, requestHeader as header } from './raw-client.js';

const MiB = 1 << 20;
const READ = 0, WRITE = 1, FLUSH = 3, TRIM = 4;
const ACK = 1;
const { threads, why } = loadReceiveThreads();
const noAddon = threads === null;
if (noAddon) console.warn(`receive-thread tests skipped: the native addon is not built (${why}); run npm run build:addon`);

/** Temp folders (images of up to 64 MiB): removed once the servers using them stopped. */
const dirs = /** @type {string[]} */ ([]);
const tempDir = () => { const d = newTempDir(); dirs.push(d); return d; };
afterAll(async () => {
  await stopAllServers();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sparse = sparseFile;
const counters = threadCounters;

const sha = (path) => createHash('sha1').update(readFileSync(path)).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function rawOpen(socket, name) {
  const c = await RawClient.connect(socket);
  await c.handshake();
  expect(await c.go(name)).toBe(ACK);
  return c;
}

describe('receive threads against real clients (dmkit serve)', () => {
  it.skipIf(noAddon)('nbdcopy over Unix and TCP: the image holds the bytes, written (payloads spliced from the socket) and read back by the threads; --loop-receive does neither', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img'), src = join(dir, 'src.bin');
    const SIZE = 33 * MiB;
    sparse(img, 40 * MiB);
    const table = `0 ${(40 * MiB) / 512} linear ${img} 0`;
    const srv = await startServer(['--listen', '127.0.0.1:0', '--device', 'd', table], { dir });
    const port = /uri: {4}nbd:\/\/127\.0\.0\.1:(\d+)\/d/.exec(srv.stdout)?.[1];
    expect(port).toBeDefined();
    const unixBytes = testBytes(SIZE, 11);
    writeFileSync(src, unixBytes);
    await ok('nbdcopy', [src, srv.uri('d')]);
    expect(readFileSync(img).subarray(0, SIZE).equals(unixBytes)).toBe(true);
    const afterUnix = await counters(srv, 'd');
    expect(afterUnix.threadWrites).toBeGreaterThan(0);
    expect(afterUnix.splicedWrites).toBeGreaterThan(0); // nbdcopy's 256 KiB payloads, through the thread's pipe
    // TCP, other bytes over the same range.
    const tcpBytes = testBytes(SIZE, 12);
    writeFileSync(src, tcpBytes);
    await ok('nbdcopy', [src, `nbd://127.0.0.1:${port}/d`]);
    expect(readFileSync(img).subarray(0, SIZE).equals(tcpBytes)).toBe(true);
    const afterTcp = await counters(srv, 'd');
    expect(afterTcp.threadWrites).toBeGreaterThan(afterUnix.threadWrites);
    expect(afterTcp.splicedWrites).toBeGreaterThan(afterUnix.splicedWrites);
    // And back out, over both: reads of 256 KiB go out from the thread (read, then sent).
    for (const [uri, out] of [[srv.uri('d'), join(dir, 'back-unix.bin')], [`nbd://127.0.0.1:${port}/d`, join(dir, 'back-tcp.bin')]]) {
      await ok('nbdcopy', [uri, out]);
      expect(readFileSync(out).subarray(0, SIZE).equals(tcpBytes)).toBe(true);
    }
    expect((await counters(srv, 'd')).threadReads).toBeGreaterThan(0);
    expect((await srv.stop()).code).toBe(0);

    // The same copy with the threads off: the bytes arrive, none through a thread.
    const dir2 = tempDir();
    const img2 = join(dir2, 'd.img');
    sparse(img2, 40 * MiB);
    const loop = await startServer(['--loop-receive', '--device', 'd', `0 ${(40 * MiB) / 512} linear ${img2} 0`], { dir: dir2 });
    await ok('nbdcopy', [src, loop.uri('d')]);
    expect(readFileSync(img2).subarray(0, SIZE).equals(tcpBytes)).toBe(true);
    const c = await counters(loop, 'd');
    expect(c.requests).toBeGreaterThan(0);
    expect([c.threadWrites, c.splicedWrites]).toEqual([0, 0]);
    await ok('nbdcopy', [loop.uri('d'), join(dir2, 'back.bin')]);
    expect((await counters(loop, 'd')).threadReads).toBe(0);
    expect((await loop.stop()).code).toBe(0);
  });

  it.skipIf(noAddon)('replies from the thread and from the event loop share one socket: libnbd keeps 64 reads (sendfile and memory) and writes in flight on one connection, and every reply is whole', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    const size = 16 * MiB;
    writeFileSync(img, testBytes(size, 11));
    const srv = await startServer(['--device', 'd', `0 ${size / 512} linear ${img} 0`], { dir });
    // Reads of 4 MiB go out with sendfile, 4-256 KiB ones from memory; writes of 4-256 KiB are the
    // thread's (no flags) or the event loop's (FUA). libnbd checks every reply's magic, cookie
    // and length: one reply cut into another breaks the connection.
    const script = `
import random
random.seed(7)
MiB = 1 << 20
model = bytearray(h.pread(${size}, 0))
inflight = []   # (cookie, write range or None)
def reap():
    global inflight
    inflight = [(c, r) for (c, r) in inflight if not h.aio_command_completed(c)]
def overlaps(off, n):
    return any(r and r[0] < off + n and off < r[1] for (_, r) in inflight)
for i in range(3000):
    while len(inflight) >= 64:
        h.poll(-1)
        reap()
    kind = random.random()
    if kind < 0.5:
        n = random.choice([4096, 65536, 262144])
        off = random.randrange(0, (${size} - n) // 4096) * 4096
        if overlaps(off, n):
            continue  # writes in flight together may land in any order: none overlap
        data = bytes([random.randrange(256)]) * n
        model[off:off + n] = data
        flags = nbd.CMD_FLAG_FUA if random.random() < 0.02 else 0
        inflight.append((h.aio_pwrite(data, off, flags=flags), (off, off + n)))
    else:
        n = random.choice([4096, 262144, 4 * MiB])
        off = random.randrange(0, (${size} - n) // 4096) * 4096
        inflight.append((h.aio_pread(nbd.Buffer(n), off), None))
while inflight:
    h.poll(-1)
    reap()
assert h.pread(${size}, 0) == bytes(model), "the image differs from the model"
print("ok")
`;
    try {
      expect((await ok('nbdsh', ['-u', srv.uri('d'), '-c', script], { timeout: 120_000 })).trim()).toBe('ok');
      const { threadWrites, threadReads } = await counters(srv, 'd');
      expect(threadWrites).toBeGreaterThan(300);
      // A READ goes to the event loop whenever the socket is the event loop's at that moment (its
      // replies leaving): how many the thread answers depends on timing (76 to several hundred).
      expect(threadReads).toBeGreaterThan(0);
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it.skipIf(noAddon)('qemu-io mixed traffic in one session: aligned, unaligned, FUA and overlapping writes match a model; only plain aligned ones go by the thread', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    const SIZE = 4 * MiB;
    sparse(img, SIZE);
    const srv = await startServer(['--device', 'd', `0 ${SIZE / 512} linear ${img} 0`], { dir });
    const model = Buffer.alloc(SIZE);
    /** [pattern, offset, length, fua] in the order sent */
    const writes = [
      [0x11, 0, 8192, false], // aligned
      [0x22, 4096, 4096, false], // aligned, over the second half of the first
      [0x33, 100, 1000, false], // unaligned, over both
      [0x44, 65536, 65536, true], // FUA
      [0x55, 65536 + 512, 1024, false], // aligned, inside the FUA one
      [0x66, 70000, 5000, false], // unaligned, inside the FUA one
      [0x77, 1 * MiB, 1 * MiB, false], // a large aligned one
      [0x88, 1 * MiB + 300, 200, true], // unaligned FUA inside it
      [0x99, 2 * MiB - 4096, 8192, false], // aligned, across the large one's end
      [0xaa, 3 * MiB + 1, 511, false], // unaligned, one sector short
    ];
    const cmds = [];
    let plainAligned = 0;
    for (const [p, off, len, fua] of writes) {
      model.fill(p, off, off + len);
      cmds.push('-c', `write ${fua ? '-f ' : ''}-P ${p} ${off} ${len}`);
      if (!fua && off % 512 === 0 && len % 512 === 0) plainAligned++;
    }
    // Reads back what the model says of a few places (qemu-io fails the command on a mismatch).
    cmds.push('-c', `read -P 0x33 100 1000`, '-c', `read -P 0x22 4096 4096`, '-c', `read -P 0x55 66048 1024`,
      '-c', `read -P 0x88 ${MiB + 300} 200`, '-c', `read -P 0x99 ${2 * MiB - 4096} 8192`);
    // writeback: qemu-io's default (writethrough) would make every write FUA.
    const out = await ok('qemu-io', ['-t', 'writeback', '-f', 'raw', srv.uri('d'), ...cmds]);
    expect(out).not.toMatch(/Pattern verification failed|error/i);
    expect(readFileSync(img).equals(model)).toBe(true);
    const c = await counters(srv, 'd');
    // qemu-io waits for each reply, so no event-loop write is ever pending when one arrives.
    expect(c.threadWrites).toBe(plainAligned);
    expect(c.requests).toBeGreaterThan(writes.length);
    expect((await srv.stop()).code).toBe(0);
  });

  it.skipIf(noAddon)('two linear segments onto two files and a zero segment: each write lands in its file at its offset, one across the boundary too', async () => {
    const dir = tempDir();
    const a = join(dir, 'a.img'), b = join(dir, 'b.img');
    sparse(a, 8 * MiB);
    sparse(b, 8 * MiB);
    // 0-4 MiB: a from 2 MiB on; 4-8 MiB: b from 1 MiB on; 8-9 MiB: zero.
    const table = `0 8192 linear ${a} 4096\n8192 8192 linear ${b} 2048\n16384 2048 zero`;
    const srv = await startServer(['--device', 'd', table], { dir });
    const inA = testBytes(65536, 1), inB = testBytes(32768, 2), across = testBytes(16384, 3), inZero = testBytes(4096, 4);
    const data = { inA, inB, across, inZero };
    for (const [n, bytes] of Object.entries(data)) writeFileSync(join(dir, `${n}.bin`), bytes);
    const load = (n) => `open('${join(dir, `${n}.bin`)}', 'rb').read()`;
    const script = [
      `h.pwrite(${load('inA')}, 65536)`,
      `h.pwrite(${load('inB')}, ${4 * MiB + 131072})`,
      `h.pwrite(${load('across')}, ${4 * MiB - 4096})`,
      `h.pwrite(${load('inZero')}, ${8 * MiB + 8192})`,
      `assert h.pread(${across.length}, ${4 * MiB - 4096}) == ${load('across')}`,
      `assert h.pread(4096, ${8 * MiB + 8192}) == bytes(4096)`,
    ].join('\n');
    await ok('nbdsh', ['-u', srv.uri('d'), '-c', script], { env: CLIENT_ENV });
    const fa = readFileSync(a), fb = readFileSync(b);
    const expectA = Buffer.alloc(8 * MiB), expectB = Buffer.alloc(8 * MiB);
    inA.copy(expectA, 2 * MiB + 65536);
    across.subarray(0, 4096).copy(expectA, 2 * MiB + 4 * MiB - 4096);
    inB.copy(expectB, MiB + 131072);
    across.subarray(4096).copy(expectB, MiB);
    expect(fa.equals(expectA)).toBe(true);
    expect(fb.equals(expectB)).toBe(true);
    // The two inside one linear segment went by the thread; the one across and the zero one did not.
    expect((await counters(srv, 'd')).threadWrites).toBe(2);
    expect((await srv.stop()).code).toBe(0);
  });

  it.skipIf(noAddon)('a striped table over three files, and with two stripes in one file: writes and reads in one segment go by the thread, in pieces across chunks; the files end as the core alone leaves them', async () => {
    // 3 stripes of 64 KiB chunks, each stripe 1 MiB into its file; 32 rows (6 MiB).
    const chunk = 65536, rows = 32, size = 3 * chunk * rows;
    const writes = [
      [0, 2 * MiB + chunk], // larger than the thread takes (2 MiB): the core's
      [0, 4096], // chunk 0: stripe 0, row 0
      [chunk + 8192, 16384], // chunk 1: stripe 1
      [2 * chunk + 61440, 4096], // the end of chunk 2: stripe 2
      [3 * chunk, chunk], // all of chunk 3: stripe 0, row 1
      [10 * chunk + 512, 1024], // inside chunk 10: stripe 1, row 3
      [4 * chunk - 4096, 8192], // across chunks 3 and 4 (stripes 0 and 1)
      [20 * chunk, 4 * chunk], // four whole chunks: stripes 2, 0, 1, 2 over rows 6-7
      [6 * chunk, 3 * chunk], // one whole row (row 2)
      [50 * chunk + 4096, chunk], // from mid-chunk 50 (stripe 2, row 16) into chunk 51 (stripe 0, row 17)
      [30 * chunk + 12288, 7 * chunk + 4096], // several rows, starting and ending mid-chunk
      [62 * chunk + 512, 2 * MiB], // 2 MiB from mid-chunk: 33 pieces, every stripe 11 times
      [1000, 100], // unaligned: the core's
    ];
    const threadWrites = 11;
    // Read on a connection of their own: every one the thread may take finds the socket free.
    const reads = [
      [0, 4096], // inside chunk 0
      [chunk - 4096, 8192], // across chunks 0 and 1
      [6 * chunk, 3 * chunk], // a whole row
      [2 * chunk + 512, 4 * chunk], // mid-chunk over two rows
      [30 * chunk + 12288, 7 * chunk + 4096], // several rows
      [62 * chunk + 512, 2 * MiB], // 2 MiB across 33 chunks: the largest read through memory
      [0, 2 * MiB + chunk], // larger: the event loop's (sendfile sends from one file)
    ];
    const threadReads = 6;
    const model = [
      `model = bytearray(${size})`,
      ...writes.map(([off, n], i) => `model[${off}:${off + n}] = bytes([${i + 1}]) * ${n}`),
    ];
    // Where each stripe lives: [file, offset in sectors].
    const ownFiles = [[0, 2048], [1, 2048], [2, 2048]];
    // Stripes 0 and 1 in one file, 1 starting where 0's rows end: one file, two places in it.
    const sharedFile = [[0, 2048], [0, 2048 + (chunk * rows) / 512], [1, 2048]];
    const run = async (/** @type {string[]} */ extra, /** @type {number[][]} */ layout = ownFiles) => {
      const dir = tempDir();
      const files = ['a', 'b', 'c'].map((n) => join(dir, `${n}.img`));
      for (const f of files) sparse(f, MiB + 2 * chunk * rows);
      const table = `0 ${size / 512} striped 3 ${chunk / 512} ${layout.map(([f, at]) => `${files[f]} ${at}`).join(' ')}`;
      const srv = await startServer([...extra, '--device', 'd', table], { dir });
      const writing = [
        ...writes.map(([off, n], i) => `h.pwrite(bytes([${i + 1}]) * ${n}, ${off})`),
        ...model,
        `assert h.pread(${size}, 0) == bytes(model)`,
      ].join('\n');
      await ok('nbdsh', ['-u', srv.uri('d'), '-c', writing], { env: CLIENT_ENV });
      const written = await counters(srv, 'd');
      // Every byte read is one written (not zero): with structured replies the thread leaves a
      // read that finds zeroes to the event loop.
      const reading = [
        ...model,
        ...reads.map(([off, n]) => `assert h.pread(${n}, ${off}) == bytes(model[${off}:${off + n}]), (${off}, ${n})`),
      ].join('\n');
      await ok('nbdsh', ['-u', srv.uri('d'), '-c', reading], { env: CLIENT_ENV });
      const c = await counters(srv, 'd');
      expect((await srv.stop()).code).toBe(0);
      return { written, reads: c.threadReads - written.threadReads, bytes: files.map((f) => readFileSync(f)) };
    };
    const threaded = await run([]);
    const loop = await run(['--loop-receive']);
    expect(threaded.written.threadWrites).toBe(threadWrites);
    expect(threaded.reads).toBe(threadReads);
    expect(loop.written.threadWrites).toBe(0);
    expect(loop.reads).toBe(0);
    threaded.bytes.forEach((b, i) => expect(b.equals(loop.bytes[i])).toBe(true));
    expect(loop.bytes.every((b) => b.some((x) => x !== 0))).toBe(true); // every stripe got data
    const sharedThreaded = await run([], sharedFile);
    const sharedLoop = await run(['--loop-receive'], sharedFile);
    expect(sharedThreaded.written.threadWrites).toBe(threadWrites);
    sharedThreaded.bytes.forEach((b, i) => expect(b.equals(sharedLoop.bytes[i])).toBe(true));
  });

  it.skipIf(noAddon)('a read-only export (--read-only): its reads are the thread\'s; a write reaches the event loop, is refused with EPERM and changes nothing', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    writeFileSync(img, testBytes(4 * MiB, 21));
    const before = sha(img);
    const srv = await startServer(['--read-only', '--device', 'd', `0 ${(4 * MiB) / 512} linear ${img} 0`], { dir });
    // Strict mode off, so that libnbd sends the write a read-only export does not take.
    const script = [
      'import errno',
      'h.set_strict_mode(0)',
      `h.connect_uri(${JSON.stringify(srv.uri('d'))})`,
      `want = open(${JSON.stringify(img)}, 'rb').read()`,
      'for off, n in [(0, 4096), (65536, 262144), (3 * 1048576, 1048576)] * 4:',
      '    assert h.pread(n, off) == want[off:off + n]',
      'try:',
      '    h.pwrite(bytes(4096), 8192)',
      '    raise SystemExit("the write was taken")',
      'except nbd.Error as e:',
      '    assert e.errnum == errno.EPERM, e',
      'assert h.pread(4096, 8192) == want[8192:12288]',
    ].join('\n');
    await ok('nbdsh', ['-c', script], { env: CLIENT_ENV });
    const c = await counters(srv, 'd');
    // Most of the twelve reads before the write. A read that arrives while the event loop's last
    // reply (the handshake's, or a read it answered) still holds the socket's write side waits up
    // to 10 ms for it and then goes to the event loop, which a busy machine may make happen; so
    // may the read after the EPERM reply. Without a thread for read-only exports there would be none.
    expect(c.threadReads).toBeGreaterThanOrEqual(6);
    expect(c.threadWrites).toBe(0);
    expect(sha(img)).toBe(before);
    expect((await srv.stop()).code).toBe(0);
  });

  it.skipIf(noAddon)('suspend while a client keeps writing: the file stands still and writes wait for resume, then all complete', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    const SIZE = 64 * MiB;
    sparse(img, SIZE);
    const srv = await startServer(['--device', 'd', `0 ${SIZE / 512} linear ${img} 0`], { dir });
    const c = await rawOpen(srv.socket, 'd');
    const model = Buffer.alloc(SIZE);
    /** @type {Map<number, number>} cookie -> time its reply came */
    const replied = new Map();
    const sentAt = new Map();
    let cookie = 0, at = 0, outstanding = 0, stop = false, failure = /** @type {Error | null} */ (null);
    const send = () => {
      const len = 4096 * (1 + (cookie % 16)); // 4-64 KiB
      if (at + len > SIZE) at = 0;
      const payload = Buffer.alloc(len, (cookie % 255) + 1);
      payload.writeUInt32BE(cookie, 0);
      payload.copy(model, at);
      c.request(WRITE, 0, ++cookie, at, len, payload);
      sentAt.set(cookie, Date.now());
      at += len;
      outstanding++;
    };
    // Replies, as they come (the client keeps up to 16 writes in flight).
    const reader = (async () => {
      while (!stop || outstanding > 0) {
        if (outstanding === 0) { await sleep(1); continue; } // none to wait for (yet)
        const r = await c.simpleReply().catch((e) => { failure = e; return null; });
        if (!r) { failure ??= new Error('connection closed'); return; }
        if (r.error !== 0) failure = new Error(`write ${r.cookie} failed: ${r.error}`);
        replied.set(r.cookie, Date.now());
        outstanding--;
      }
    })();
    const writer = (async () => {
      while (!stop && !failure) {
        while (outstanding < 16) send();
        await sleep(1);
      }
    })();
    await sleep(300);
    const before = (await counters(srv, 'd')).threadWrites;
    expect(before).toBeGreaterThan(0);
    expect((await srv.ctl('suspend', 'd')).code).toBe(0);
    const suspendedAt = Date.now();
    // Writes sent now, past the writer's window.
    const lateFrom = cookie + 1;
    for (let i = 0; i < 4; i++) send();
    const h1 = sha(img);
    await sleep(300);
    const h2 = sha(img);
    expect(h2).toBe(h1);
    for (let k = lateFrom; k < lateFrom + 4; k++) expect(replied.has(k)).toBe(false);
    const resumedAt = Date.now();
    expect((await srv.ctl('resume', 'd')).code).toBe(0);
    // Nothing sent after the suspend returned was answered before resume.
    for (const [k, t] of replied) if (sentAt.get(k) >= suspendedAt) expect(t).toBeGreaterThanOrEqual(resumedAt);
    await sleep(300);
    stop = true;
    await writer;
    await reader;
    expect(failure?.message ?? null).toBeNull();
    for (let k = lateFrom; k < lateFrom + 4; k++) expect(replied.has(k)).toBe(true);
    expect(replied.size).toBe(cookie);
    expect(readFileSync(img).equals(model)).toBe(true);
    // The threads wrote again after resume.
    expect((await counters(srv, 'd')).threadWrites).toBeGreaterThan(before);
    c.destroy();
    expect((await srv.stop()).code).toBe(0);
  });

  it.skipIf(noAddon)('a reload to another file while connected: after resume the same connection writes into the new file', async () => {
    const dir = tempDir();
    const a = join(dir, 'a.img'), b = join(dir, 'b.img');
    sparse(a, 4 * MiB);
    sparse(b, 4 * MiB);
    const srv = await startServer(['--device', 'd', `0 8192 linear ${a} 0`], { dir });
    const c = await rawOpen(srv.socket, 'd');
    const one = Buffer.alloc(65536, 0x5a), two = Buffer.alloc(65536, 0xa5);
    c.request(WRITE, 0, 1, 0, one.length, one);
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 1 });
    expect((await counters(srv, 'd')).threadWrites).toBe(1);
    expect((await srv.ctl('suspend', 'd')).code).toBe(0);
    expect((await srv.ctl('reload', 'd', '--table', `0 8192 linear ${b} 0`)).code).toBe(0);
    expect((await srv.ctl('resume', 'd')).code).toBe(0);
    c.request(WRITE, 0, 2, 0, two.length, two);
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 2 });
    c.request(READ, 0, 3, 0, 65536);
    expect((await c.simpleReply(65536))?.data?.equals(two)).toBe(true);
    expect(readFileSync(b).subarray(0, 65536).equals(two)).toBe(true);
    expect(readFileSync(a).subarray(0, 65536).equals(one)).toBe(true);
    expect((await counters(srv, 'd')).threadWrites).toBe(2); // the new map was published
    c.destroy();
    expect((await srv.stop()).code).toBe(0);
  });
});

/** An in-process server with receive threads on one linear device (or the given table). */
/**
 * Makes a FileBacking's methods (each ending in a `done` callback) report completion `ms` later:
 * the I/O itself happens at once. `onCall` counts the calls.
 * @param {any} file @param {string[]} methods @param {number} ms @param {() => void} [onCall]
 */
function holdCompletions(file, methods, ms, onCall) {
  for (const m of methods) {
    const real = file[m].bind(file);
    file[m] = (...args) => {
      onCall?.();
      const done = args.pop();
      real(...args, (/** @type {any} */ e) => setTimeout(() => done(e), ms));
    };
  }
}

async function inProcess(opts = {}) {
  const dir = tempDir();
  const socket = join(dir, 'nbd.sock');
  const files = { a: join(dir, 'a.img'), b: join(dir, 'b.img') };
  for (const f of Object.values(files)) sparse(f, 8 * MiB);
  const th = /** @type {NonNullable<typeof threads>} */ (threads);
  const registry = await DeviceRegistry.create({ writeMaps: th.WriteMap });
  await registry.create('d', opts.table?.(files) ?? `0 16384 linear ${files.a} 0`);
  const logs = /** @type {string[]} */ ([]);
  const server = new NbdServer({
    exports: registry, receiveThreads: th, limits: opts.limits, log: (l) => logs.push(l), onError: (l) => logs.push(l),
  });
  await server.listenUnix(socket);
  return {
    registry, server, socket, files, logs, exp: registry.getExport('d'),
    async close() { await server.close(); await registry.close(); },
  };
}

/**
 * An in-process server with receive threads: `base`, a `snapshot-origin` over 4 MiB of bytes 1,
 * and `snap`, a snapshot of it (chunk 8) with the store given; returned once the threads' copies
 * are lent (`copies`: the origin's ThreadCopies).
 * @param {string} store
 */
async function originWithSnapshot(store) {
  const dir = tempDir();
  const base = join(dir, 'base.img'), cow = join(dir, 'cow.img'), socket = join(dir, 'nbd.sock');
  writeFileSync(base, Buffer.alloc(4 * MiB, 1));
  sparse(cow, 4 * MiB);
  const th = /** @type {NonNullable<typeof threads>} */ (threads);
  const registry = await DeviceRegistry.create({ writeMaps: th.WriteMap });
  await registry.create('base', `0 8192 snapshot-origin ${base}`);
  await registry.create('snap', `0 8192 snapshot ${base} ${cow} ${store} 8`);
  const logs = /** @type {string[]} */ ([]);
  const server = new NbdServer({ exports: registry, receiveThreads: th, log: (l) => logs.push(l), onError: (l) => logs.push(l) });
  await server.listenUnix(socket);
  const copies = /** @type {any} */ (registry.getExport('base')).threadCopies;
  for (let t0 = Date.now(); copies.state !== 'on' && Date.now() - t0 < 3000;) await sleep(20);
  expect(copies.state).toBe('on'); // lent: the threads do first writes
  return { registry, server, socket, base, cow, logs, copies };
}

describe('receive threads in process', () => {
  it.skipIf(noAddon)('bad magic after fast writes closes only that connection; a half-sent write is cut by the stall watchdog, unanswered', async () => {
    const s = await inProcess({ limits: { stallMs: 400 } });
    try {
      const bad = await rawOpen(s.socket, 'd');
      const good = await rawOpen(s.socket, 'd');
      const half = await rawOpen(s.socket, 'd');
      // Fast writes, pipelined; once answered, a request with a damaged magic. (Not in the same
      // batch: a connection closed for a bad magic drops replies still queued, thread or not.)
      const batch = [];
      for (let i = 0; i < 8; i++) batch.push(header(WRITE, i + 1, i * 65536, 65536), Buffer.alloc(65536, i + 1));
      bad.write(Buffer.concat(batch));
      for (let i = 0; i < 8; i++) expect(await bad.simpleReply()).toMatchObject({ error: 0, cookie: i + 1 });
      const damaged = header(READ, 99, 0, 4096);
      damaged.writeUInt32BE(0x12345678, 0);
      bad.write(damaged);
      expect(await bad.closed(5000)).toBe(true);
      expect(bad.buf.length).toBe(0); // nothing answered the damaged request
      expect(s.exp.writtenByThreads).toBe(8);
      const a = readFileSync(s.files.a);
      for (let i = 0; i < 8; i++) expect(a.subarray(i * 65536, (i + 1) * 65536).every((x) => x === i + 1)).toBe(true);

      // Half of a 512 KiB write, then nothing.
      half.request(WRITE, 0, 7, 4 * MiB, 512 * 1024, Buffer.alloc(256 * 1024, 0xee));
      // The other client keeps working meanwhile.
      const mine = testBytes(131072, 9);
      for (let i = 0; i < 4; i++) {
        good.request(WRITE, 0, 10 + i, 2 * MiB + i * 131072, mine.length, mine);
        expect(await good.simpleReply()).toMatchObject({ error: 0, cookie: 10 + i });
      }
      expect(await half.closed(5000)).toBe(true);
      expect(half.buf.length).toBe(0); // no reply to the half-sent write
      expect(s.logs.join('\n')).toMatch(/a request stopped arriving half-way: nothing for 400 ms/);
      expect(readFileSync(s.files.a).subarray(4 * MiB, 4 * MiB + 512 * 1024).every((x) => x === 0)).toBe(true);
      expect(good.ended).toBe(false);
      for (let i = 0; i < 4; i++) {
        good.request(READ, 0, 20 + i, 2 * MiB + i * 131072, mine.length);
        expect((await good.simpleReply(mine.length))?.data?.equals(mine)).toBe(true);
      }
      expect(s.exp.writtenByThreads).toBe(12);
      good.destroy();
      // Every thread write was accounted for: a suspend does not wait forever.
      await s.registry.suspend('d');
      await s.registry.resume('d');
    } finally {
      await s.close();
    }
  });

  it.skipIf(noAddon)('a large write whose payload is still to come is spliced from the socket into the file; one sent in more pieces than a pipe holds goes through memory; a client gone half-way writes none of it, and a close does not wait for one', async () => {
    const s = await inProcess();
    const accounted = async (n) => {
      for (let t0 = Date.now(); s.exp.writtenByThreads < n && Date.now() - t0 < 3000;) await sleep(10);
      expect(s.exp.writtenByThreads).toBe(n);
    };
    let pending;
    try {
      const c = await rawOpen(s.socket, 'd');
      const first = testBytes(256 * 1024, 1);
      c.write(header(WRITE, 1, 0, first.length));
      await sleep(30); // the header alone: all of the payload is still to come
      c.write(first);
      expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 1 });
      expect(readFileSync(s.files.a).subarray(0, first.length).equals(first)).toBe(true);
      await accounted(1);
      expect(s.exp.writtenSpliced).toBe(1);

      // 1024 pieces of 256 bytes, each its own send: more than the pipe's pages (512 at most).
      const second = testBytes(256 * 1024, 2);
      c.write(header(WRITE, 2, MiB, second.length));
      for (let at = 0; at < second.length; at += 256) {
        c.write(second.subarray(at, at + 256));
        await new Promise((r) => setImmediate(r));
      }
      expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 2 });
      expect(readFileSync(s.files.a).subarray(MiB, MiB + second.length).equals(second)).toBe(true);
      await accounted(2);
      expect(s.exp.writtenSpliced).toBe(1);

      // A quarter of a 512 KiB payload, then the client is gone.
      const gone = await rawOpen(s.socket, 'd');
      gone.write(header(WRITE, 3, 2 * MiB, 512 * 1024));
      await sleep(30);
      gone.write(Buffer.alloc(128 * 1024, 0xee));
      await sleep(50);
      gone.destroy();
      // Another half-sent one stays pending until the server closes.
      pending = await rawOpen(s.socket, 'd');
      pending.write(header(WRITE, 4, 3 * MiB, 512 * 1024));
      await sleep(30);
      pending.write(Buffer.alloc(128 * 1024, 0xdd));
      // The first connection goes on, spliced again.
      const third = testBytes(512 * 1024, 3);
      c.write(header(WRITE, 5, 4 * MiB, third.length));
      await sleep(30);
      c.write(third);
      expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 5 });
      await accounted(3);
      expect(s.exp.writtenSpliced).toBe(2);
      const a = readFileSync(s.files.a);
      expect(a.subarray(4 * MiB, 4 * MiB + third.length).equals(third)).toBe(true);
      expect(a.subarray(2 * MiB, 4 * MiB).every((x) => x === 0)).toBe(true); // neither half-sent write landed
      c.destroy();
    } finally {
      const t0 = Date.now();
      await s.close();
      expect(Date.now() - t0).toBeLessThan(3000); // the thread waiting for the pending payload stopped
      pending?.destroy();
    }
    expect(readFileSync(s.files.a).subarray(3 * MiB, 4 * MiB).every((x) => x === 0)).toBe(true);
  });

  it.skipIf(noAddon)('a large write that a striped segment splits into pieces goes from its pipe through memory, each piece in its file', async () => {
    const s = await inProcess({ table: (f) => `0 16384 striped 2 128 ${f.a} 0 ${f.b} 0` });
    try {
      const c = await rawOpen(s.socket, 'd');
      const data = testBytes(256 * 1024, 4); // four 64 KiB chunks: a, b, a, b
      c.write(header(WRITE, 1, 0, data.length));
      await sleep(30);
      c.write(data);
      expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 1 });
      const a = readFileSync(s.files.a), b = readFileSync(s.files.b), K = 65536;
      expect(Buffer.concat([a.subarray(0, K), b.subarray(0, K), a.subarray(K, 2 * K), b.subarray(K, 2 * K)]).equals(data)).toBe(true);
      for (let t0 = Date.now(); s.exp.writtenByThreads < 1 && Date.now() - t0 < 3000;) await sleep(10);
      expect([s.exp.writtenByThreads, s.exp.writtenSpliced]).toEqual([1, 0]);
      c.destroy();
    } finally {
      await s.close();
    }
  });

  // Status lines after one and two exceptions: a persistent store also counts its header and first area.
  for (const [store, one, two] of [['N', '8/8192 0', '16/8192 0'], ['P', '24/8192 16', '32/8192 16']]) {
    it.skipIf(noAddon)(`a snapshot read beside the threads' copies takes nothing back: a first write over its chunk is copied at once but lands after the read, which reads the old bytes (${store})`, async () => {
      const { registry, server, socket, base, cow, logs } = await originWithSnapshot(store);
      try {
        holdCompletions(/** @type {any} */ (registry.engine.fileByPath(base)), ['read', 'readAsync'], 400); // the snapshot's read of the origin is in flight 400 ms
        const reader = await rawOpen(socket, 'snap');
        const writer = await rawOpen(socket, 'base');
        reader.write(header(READ, 1, 5 * 4096, 4096));
        await sleep(50);
        writer.write(Buffer.concat([header(WRITE, 2, 5 * 4096, 4096), Buffer.alloc(4096, 9)]));
        await sleep(100);
        // A second writer over the same chunk, on its own connection: it must not land first either.
        const second = await rawOpen(socket, 'base');
        second.write(Buffer.concat([header(WRITE, 7, 5 * 4096, 4096), Buffer.alloc(4096, 8)]));
        await sleep(100);
        expect(readFileSync(cow).includes(Buffer.alloc(4096, 1))).toBe(true); // copied into a COW chunk
        expect(readFileSync(base)[5 * 4096]).toBe(1); // but the origin waits for the read
        const read = /** @type {Buffer} */ (await reader.read(16 + 4096, 5000));
        expect(read.readUInt32BE(4)).toBe(0);
        expect(read.subarray(16).every((b) => b === 1)).toBe(true);
        const written = /** @type {Buffer} */ (await writer.read(16, 5000));
        expect(written.readUInt32BE(4)).toBe(0);
        expect((/** @type {Buffer} */ (await second.read(16, 5000))).readUInt32BE(4)).toBe(0);
        expect(readFileSync(base)[5 * 4096]).toBe(8); // the second write came after the first
        second.destroy();
        // The core now maps the snapshot's chunk 5 onto the copy: old bytes again, from the COW file.
        reader.write(header(READ, 3, 5 * 4096, 4096));
        expect((/** @type {Buffer} */ (await reader.read(16 + 4096, 5000))).subarray(16).every((b) => b === 1)).toBe(true);
        expect(registry.status('snap').trim()).toBe(`0 8192 snapshot ${one}`);
        // A chunk copied and written just now, its copy perhaps not heard of yet: the read folds it first.
        writer.write(Buffer.concat([header(WRITE, 4, 6 * 4096, 4096), Buffer.alloc(4096, 9)]));
        expect((/** @type {Buffer} */ (await writer.read(16, 5000))).readUInt32BE(4)).toBe(0);
        reader.write(header(READ, 5, 6 * 4096, 4096));
        expect((/** @type {Buffer} */ (await reader.read(16 + 4096, 5000))).subarray(16).every((b) => b === 1)).toBe(true);
        expect(registry.status('snap').trim()).toBe(`0 8192 snapshot ${two}`);
        expect(logs.filter((l) => /bug:|failed|refused/.test(l))).toEqual([]);
        reader.destroy();
        writer.destroy();
      } finally {
        await server.close();
        await registry.close();
      }
    });
  }

  it.skipIf(noAddon)('a server closed while a thread\'s first write waits for a snapshot read: the thread gives the write up, nothing hangs', async () => {
    const { registry, server, socket, base, logs } = await originWithSnapshot('N');
    holdCompletions(/** @type {any} */ (registry.engine.fileByPath(base)), ['read', 'readAsync'], 1500);
    const reader = await rawOpen(socket, 'snap');
    const writer = await rawOpen(socket, 'base');
    reader.write(header(READ, 1, 5 * 4096, 4096));
    await sleep(50);
    writer.write(Buffer.concat([header(WRITE, 2, 5 * 4096, 4096), Buffer.alloc(4096, 9)]));
    await sleep(100); // the thread copied the chunk and waits for the read
    const t0 = Date.now();
    await server.close();
    await registry.close();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(readFileSync(base)[5 * 4096]).toBe(1); // given up: its connection closed unanswered
    expect(logs.filter((l) => /write of/.test(l))).toEqual([]); // not a failed write: none was tried
    reader.destroy();
    writer.destroy();
  });

  // The thread writes W at once while READ headers before it wait in the stash (pipelineBytes).
  // W's record must be accounted for at once: a suspend waits for it, and the stash would only
  // be fed again after resume (the next READ is held by the suspended device).
  it.skipIf(noAddon)('suspend returns while a thread write waits behind READs the event loop has not parsed yet', async () => {
    const s = await inProcess({ table: (f) => `0 16384 linear ${f.a} 0` });
    try {
      const file = /** @type {any} */ (s.registry.engine.fileByPath(s.files.a));
      holdCompletions(file, ['read', 'readAsync'], 300); // reads in flight for a while
      const c = await rawOpen(s.socket, 'd');
      const parts = [];
      // Unaligned: the event loop's reads (the thread takes only whole sectors).
      for (let i = 0; i < 6; i++) parts.push(header(READ, i + 1, (i % 2) * MiB + 1, MiB * 4));
      parts.push(header(WRITE, 100, 6 * MiB, 4096), Buffer.alloc(4096, 7));
      c.write(Buffer.concat(parts));
      const reader = (async () => { // replies taken as they come
        for (;;) {
          const h = await c.read(16, 20_000).catch(() => null);
          if (!h) return;
          if (Number(h.readBigUInt64BE(8)) !== 100 && !(await c.read(4 * MiB, 20_000).catch(() => null))) return;
        }
      })();
      await sleep(100);
      expect(readFileSync(s.files.a)[6 * MiB]).toBe(7); // the thread wrote W already
      let suspended = false;
      const suspending = s.registry.suspend('d').then(() => { suspended = true; });
      for (let t0 = Date.now(); !suspended && Date.now() - t0 < 3000;) await sleep(20);
      const inTime = suspended;
      await s.registry.resume('d');
      await suspending;
      c.destroy();
      await reader;
      expect(inTime).toBe(true);
    } finally {
      await s.close();
    }
  });

  it.skipIf(noAddon)('a READ that arrives while the event loop\'s reply still holds the socket waits for it to leave and is answered by the thread', async () => {
    const s = await inProcess();
    try {
      writeFileSync(s.files.a, testBytes(8 * MiB, 3));
      const c = await rawOpen(s.socket, 'd');
      c.request(READ, 0, 1, 0, 4096); // the thread's, once the handshake's replies have left
      expect((await c.simpleReply(4096))?.error).toBe(0);
      await vi.waitFor(() => expect(s.exp.readByThreads).toBe(1));
      const conn = /** @type {any} */ ([...s.server.connections][0]);
      const gate = conn.threadInput.native;
      expect(gate.tryClaimOutput()).toBe(true); // as the event loop does while its replies leave
      setTimeout(() => gate.releaseOutput(), 3);
      c.request(READ, 0, 2, 65536, 65536);
      const r = await c.simpleReply(65536);
      expect(r?.data?.equals(readFileSync(s.files.a).subarray(65536, 131072))).toBe(true);
      await vi.waitFor(() => expect(s.exp.readByThreads).toBe(2));
      c.destroy();
    } finally {
      await s.close();
    }
  });

  it.skipIf(noAddon)('a striped write across chunks: each stripe\'s pieces are written as one run of its file, and each run reaches that file\'s bookkeeping (written map, writes done); one request counted, and a suspend drains', async () => {
    const chunk = 65536;
    // 2 stripes of 64 KiB chunks: a from 1 MiB on, b from 0; 4 MiB.
    const s = await inProcess({ table: (f) => `0 8192 striped 2 ${chunk / 512} ${f.a} 2048 ${f.b} 0` });
    try {
      const files = [s.files.a, s.files.b].map((p) => /** @type {any} */ (s.registry.engine.fileByPath(p)));
      const marks = files.map((f) => {
        const seen = /** @type {number[][]} */ ([]);
        const real = f.written.mark.bind(f.written);
        f.written.mark = (pos, len) => { seen.push([pos, len]); real(pos, len); };
        return seen;
      });
      const done0 = files.map((f) => f.writesDone);
      const c = await rawOpen(s.socket, 'd');
      const data = testBytes(3 * chunk, 5);
      c.request(WRITE, 0, 1, chunk - 4096, data.length, data); // chunks 0-3: a, b, a, b
      expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 1 });
      c.request(WRITE, 0, 2, 4 * chunk, 4096, Buffer.alloc(4096, 9)); // inside chunk 4: a, row 2
      expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 2 });
      await vi.waitFor(() => expect(s.exp.writtenByThreads).toBe(2));
      // a: the end of chunk 0 (row 0) and chunk 2 (row 1) follow one another in the file, as do
      // b's chunk 1 (row 0) and the start of chunk 3 (row 1); then the write inside chunk 4.
      expect(marks[0]).toEqual([[MiB + chunk - 4096, chunk + 4096], [MiB + 2 * chunk, 4096]]);
      expect(marks[1]).toEqual([[0, 2 * chunk - 4096]]);
      expect(files.map((f, i) => f.writesDone - done0[i])).toEqual([2, 1]);
      const a = readFileSync(s.files.a), b = readFileSync(s.files.b);
      expect(a.subarray(MiB + chunk - 4096, MiB + chunk).equals(data.subarray(0, 4096))).toBe(true);
      expect(b.subarray(0, chunk).equals(data.subarray(4096, 4096 + chunk))).toBe(true);
      expect(a.subarray(MiB + chunk, MiB + 2 * chunk).equals(data.subarray(4096 + chunk, 4096 + 2 * chunk))).toBe(true);
      expect(b.subarray(chunk, 2 * chunk - 4096).equals(data.subarray(4096 + 2 * chunk))).toBe(true);
      // Read back across the same chunks, by the thread.
      c.request(READ, 0, 3, chunk - 4096, data.length);
      expect((await c.simpleReply(data.length))?.data?.equals(data)).toBe(true);
      await vi.waitFor(() => expect(s.exp.readByThreads).toBe(1));
      expect(/** @type {any} */ (s.exp.writeMap).inflight()).toBe(0);
      c.destroy();
      await s.registry.suspend('d');
      await s.registry.resume('d');
    } finally {
      await s.close();
    }
  });

  it.skipIf(noAddon)('while the event loop holds a write or a TRIM, a plain write over the same bytes waits behind it there, and one elsewhere is the thread\'s at once', async () => {
    const s = await inProcess();
    try {
      const file = /** @type {any} */ (s.registry.engine.fileByPath(s.files.a));
      let held = 0;
      holdCompletions(file, ['write', 'writeAsync'], 300, () => held++); // the event loop's writes land now, and are answered 300 ms later
      const c = await rawOpen(s.socket, 'd');
      const FUA = 1; // the event loop's: the thread takes only writes without flags
      c.write(Buffer.concat([
        header(WRITE, 1, 0, 4096, FUA), Buffer.alloc(4096, 1),
        header(WRITE, 2, 0, 4096), Buffer.alloc(4096, 2), // over write 1: behind it, in the event loop
        header(WRITE, 3, MiB, 4096), Buffer.alloc(4096, 3), // elsewhere: the thread's
      ]));
      await vi.waitFor(() => expect(s.exp.writtenByThreads).toBe(1));
      expect(readFileSync(s.files.a)[MiB]).toBe(3);
      const cookies = [];
      for (let i = 0; i < 3; i++) {
        const r = await c.simpleReply();
        expect(r?.error).toBe(0);
        cookies.push(r?.cookie);
      }
      expect(cookies[0]).toBe(3); // write 3 overtook the two the event loop held
      expect(cookies.slice(1).sort()).toEqual([1, 2]);
      expect(held).toBe(2);
      expect(readFileSync(s.files.a)[0]).toBe(2); // the later write over the same bytes landed last
      expect(s.exp.writtenByThreads).toBe(1);
      // A TRIM changes data too: a write over its bytes is handed over while it is held.
      holdCompletions(file, ['zero'], 300);
      c.write(Buffer.concat([
        header(TRIM, 4, 2 * MiB, 65536),
        header(WRITE, 5, 2 * MiB + 4096, 4096), Buffer.alloc(4096, 5), // under the TRIM: the event loop's
        header(WRITE, 6, 3 * MiB, 4096), Buffer.alloc(4096, 6), // elsewhere: the thread's
      ]));
      const first = await c.simpleReply();
      expect(first).toMatchObject({ error: 0, cookie: 6 });
      for (let i = 0; i < 2; i++) expect((await c.simpleReply())?.error).toBe(0);
      expect(s.exp.writtenByThreads).toBe(2);
      c.destroy();
    } finally {
      await s.close();
    }
  });

  it.skipIf(noAddon)('FLUSH after a thread\'s write costs one fdatasync of the file it wrote, a second FLUSH none, the next write one again: the addon counts the threads\' writes', async () => {
    const s = await inProcess({ table: (f) => `0 8192 linear ${f.a} 0\n8192 8192 linear ${f.b} 0` });
    try {
      const files = [s.files.a, s.files.b].map((p) => /** @type {any} */ (s.registry.engine.fileByPath(p)));
      const c = await rawOpen(s.socket, 'd');
      const flush = async (cookie) => {
        c.request(FLUSH, 0, cookie, 0, 0);
        expect(await c.simpleReply()).toMatchObject({ error: 0, cookie });
      };
      await flush(1); // the files as opened (the engine syncs each once)
      const base = files.map((f) => f.syncs);
      const syncs = () => files.map((f, i) => f.syncs - base[i]);
      const write = async (cookie, offset, byte) => {
        c.request(WRITE, 0, cookie, offset, 4096, Buffer.alloc(4096, byte));
        expect(await c.simpleReply()).toMatchObject({ error: 0, cookie });
      };
      await write(2, 8192, 1); // onto a
      await flush(3);
      expect(syncs()).toEqual([1, 0]);
      await flush(4);
      expect(syncs()).toEqual([1, 0]);
      await write(5, 4 * MiB + 8192, 2); // onto b
      await flush(6);
      expect(syncs()).toEqual([1, 1]);
      await write(7, 0, 3); // onto a
      await flush(8);
      await flush(9);
      expect(syncs()).toEqual([2, 1]);
      await vi.waitFor(() => expect(s.exp.writtenByThreads).toBe(3));
      await flush(10); // hearing of the writes later costs nothing
      expect(syncs()).toEqual([2, 1]);
      c.destroy();
    } finally {
      await s.close();
    }
  });

  it.skipIf(noAddon)('a FLUSH on another connection before the event loop heard of a thread\'s write syncs the file: the thread counted the write before replying', async () => {
    const s = await inProcess();
    const exp = /** @type {any} */ (s.exp);
    const held = /** @type {Float64Array[]} */ ([]);
    try {
      const file = /** @type {any} */ (s.registry.engine.fileByPath(s.files.a));
      const writer = await rawOpen(s.socket, 'd');
      const flusher = await rawOpen(s.socket, 'd');
      const flush = async (cookie) => {
        flusher.request(FLUSH, 0, cookie, 0, 0);
        expect(await flusher.simpleReply()).toMatchObject({ error: 0, cookie });
      };
      await flush(1);
      const synced = file.syncs, counted = file.threadWrites.count();
      exp.threadIoDone = (/** @type {Float64Array} */ records) => { held.push(records); }; // the event loop hears of nothing
      writer.request(WRITE, 0, 2, 65536, 4096, Buffer.alloc(4096, 7));
      expect(await writer.simpleReply()).toMatchObject({ error: 0, cookie: 2 });
      expect(file.threadWrites.count()).toBe(counted + 1);
      await flush(3);
      expect(file.syncs).toBe(synced + 1);
      await vi.waitFor(() => expect(held.length).toBe(1)); // the thread reported it: held
      await flush(4);
      expect(file.syncs).toBe(synced + 1);
      expect(s.exp.writtenByThreads).toBe(0);
      delete exp.threadIoDone;
      for (const records of held.splice(0)) s.exp.threadIoDone(records);
      expect(s.exp.writtenByThreads).toBe(1);
      await flush(5);
      expect(file.syncs).toBe(synced + 1);
      writer.destroy();
      flusher.destroy();
    } finally {
      delete exp.threadIoDone;
      for (const records of held) s.exp.threadIoDone(records);
      await s.close();
    }
  });

  it.skipIf(noAddon)('nbdsh: write, FLUSH, FLUSH, write, FLUSH, all by the thread, cost two fdatasyncs', async () => {
    const s = await inProcess();
    try {
      const file = /** @type {any} */ (s.registry.engine.fileByPath(s.files.a));
      const synced = file.syncs;
      await nbdsh(`nbd+unix:///d?socket=${s.socket}`,
        'h.pwrite(b"\\x01" * 4096, 0); h.flush(); h.flush(); h.pwrite(b"\\x02" * 4096, 65536); h.flush()');
      expect(file.syncs - synced).toBe(2);
      await vi.waitFor(() => expect(s.exp.writtenByThreads).toBe(2));
    } finally {
      await s.close();
    }
  });
});
