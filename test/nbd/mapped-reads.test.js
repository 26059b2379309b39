// READs of 64 KiB to 2 MiB that a receive thread answers are sent straight from a mapping of the
// image file (host-nbd/addon/src/file_view.h). The client must see exactly the file's bytes,
// whatever the reply style and wherever the segment starts in the file; zeroes keep their hole
// chunks; an image shortened under the server gets an error reply, never a crash.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, truncateSync, statfsSync, readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, testBytes, startServer, stopAllServers, nbdsh, threadCounters } from './helpers.js';

const KiB = 1024, MiB = 1 << 20;

afterAll(stopAllServers);

/** Reads sent from a mapping of an image in dir: n, or none where dir is on tmpfs or ramfs (file_view.h). */
const mapped = (dir, n) => ([0x01021994, 0x858458f6].includes(statfsSync(dir).type) ? 0 : n);

/** Python: reads each [offset, length] of `uri` and checks it against `img` from `skip` bytes on. */
function readsChecked(uri, img, skip, reads, structured) {
  return `
data = open(${JSON.stringify(img)}, 'rb').read()[${skip}:]
h = nbd.NBD()
h.set_request_structured_replies(${structured ? 'True' : 'False'})
h.connect_uri(${JSON.stringify(uri)})
for off, n in ${JSON.stringify(reads)}:
    got = h.pread(n, off)
    assert got == data[off:off + n], (off, n)
h.shutdown()
`;
}

describe('reads sent from mapped images', () => {
  it('carry the file\'s bytes with either reply style, from any start in the file; small reads are copied', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    writeFileSync(img, testBytes(16 * MiB, 11));
    // Segments that start 512 bytes and 3 pages into the file: the mapping starts on a page.
    const srv = await startServer(['--device', 'odd', `0 32000 linear ${img} 1`, '--device', 'paged', `0 32000 linear ${img} 24`], { dir });
    const reads = [[0, 64 * KiB], [MiB + 4 * KiB, 256 * KiB], [3 * MiB + 512, 2 * MiB], [7 * MiB, 4 * KiB], [8 * MiB - 64 * KiB, 64 * KiB]];
    for (const [name, skip] of [['odd', 512], ['paged', 24 * 512]]) {
      for (const structured of [false, true]) await nbdsh(null, readsChecked(srv.uri(name), img, skip, reads, structured));
      const c = await threadCounters(srv, name);
      expect(c.threadReads).toBe(2 * reads.length); // every read by the thread
      expect(c.mappedReads).toBe(mapped(dir, 2 * (reads.length - 1))); // all but the 4 KiB one from the mapping
    }
    await srv.stop();
  });

  it('leave a read with a 64 KiB piece of zeroes to the event loop (a hole chunk); data that only starts with zeroes goes from the mapping', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    const data = testBytes(4 * MiB, 12);
    data.fill(0, MiB, MiB + 64 * KiB); // written zeroes, not a hole in the file
    data.fill(0, 2 * MiB, 2 * MiB + 4 * KiB); // 4 KiB of zeroes, then data
    writeFileSync(img, data);
    const srv = await startServer(['--device', 'disk', `0 8192 linear ${img} 0`], { dir });
    await nbdsh(srv.uri('disk'), `
data = open(${JSON.stringify(img)}, 'rb').read()
def chunks_of(n, off):
    got = []
    buf = bytearray(n)
    def cb(subbuf, offset, status, error):
        got.append((status, offset))
        buf[offset - off:offset - off + len(subbuf)] = subbuf
        return 0
    h.pread_structured(n, off, cb)
    assert bytes(buf) == data[off:off + n], off
    return got
assert chunks_of(64 * 1024, ${MiB}) == [(nbd.READ_HOLE, ${MiB})]
chunks_of(256 * 1024, ${MiB - 64 * KiB})
assert chunks_of(256 * 1024, ${2 * MiB}) == [(nbd.READ_DATA, ${2 * MiB})]
`);
    const c = await threadCounters(srv, 'disk');
    expect(c.threadReads).toBe(1);
    expect(c.mappedReads).toBe(mapped(dir, 1));
    await srv.stop();
  });

  it('an image shortened under the server: reads past its end fail with EIO, the connection goes on', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    writeFileSync(img, testBytes(16 * MiB, 13));
    const srv = await startServer(['--device', 'disk', `0 32768 linear ${img} 0`], { dir });
    await nbdsh(null, readsChecked(srv.uri('disk'), img, 0, [[12 * MiB, 256 * KiB]], true));
    expect((await threadCounters(srv, 'disk')).mappedReads).toBe(mapped(dir, 1));
    truncateSync(img, 8 * MiB);
    // Past the end, the thread leaves the read to the event loop, which reads it through memory
    // (not from the file with sendfile, whose reply header would leave first) and fails it.
    await nbdsh(null, `
import errno
data = open(${JSON.stringify(img)}, 'rb').read()
for structured in (False, True):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    h.connect_uri(${JSON.stringify(srv.uri('disk'))})
    try:
        h.pread(64 * 1024, ${12 * MiB})
        raise AssertionError('a read past the shortened image succeeded')
    except nbd.Error as e:
        assert e.errnum == errno.EIO, e
    assert h.pread(256 * 1024, 0) == data[:256 * 1024]
    try:
        h.pread(256 * 1024, ${12 * MiB})
        raise AssertionError('a read past the shortened image succeeded')
    except nbd.Error as e:
        assert e.errnum == errno.EIO, e
    assert h.pread(256 * 1024, 0) == data[:256 * 1024]
    h.shutdown()
h = nbd.NBD()
h.connect_uri(${JSON.stringify(srv.uri('disk'))})
assert h.pread(1024 * 1024, 0) == data[:1024 * 1024]
`);
    // The reads before the end were sent from the mapping; none past it was.
    expect((await threadCounters(srv, 'disk')).mappedReads).toBe(mapped(dir, 6));
    expect(srv.stderr).toMatch(/shortened while in use/);
    expect(srv.proc.exitCode).toBe(null);
    await srv.stop();
  });

  it('a striped read inside one chunk is sent from its stripe\'s mapping, one across chunks is copied', async () => {
    const dir = tempDir();
    const a = join(dir, 'a.img'), b = join(dir, 'b.img');
    writeFileSync(a, testBytes(4 * MiB, 14));
    writeFileSync(b, testBytes(4 * MiB, 15));
    const srv = await startServer(['--device', 'st', `0 16384 striped 2 256 ${a} 0 ${b} 0`], { dir });
    await nbdsh(srv.uri('st'), `
a = open(${JSON.stringify(a)}, 'rb').read()
b = open(${JSON.stringify(b)}, 'rb').read()
chunk = 128 * 1024
def expected(off, n):
    out = b''
    while n > 0:
        k = off // chunk
        at = off % chunk
        m = min(n, chunk - at)
        f = a if k % 2 == 0 else b
        pos = (k // 2) * chunk + at
        out += f[pos:pos + m]
        off += m
        n -= m
    return out
for off, n in ((0, chunk), (5 * chunk, chunk), (9 * chunk + 64 * 1024, 64 * 1024), (3 * chunk, 4 * chunk)):
    assert h.pread(n, off) == expected(off, n), (off, n)
`);
    const c = await threadCounters(srv, 'st');
    expect(c.threadReads).toBe(4);
    expect(c.mappedReads).toBe(mapped(dir, 3));
    await srv.stop();
  });

  it('share one mapping per image file, however many segments reach it', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    writeFileSync(img, testBytes(16 * MiB, 16));
    // 256 segments of 64 KiB, in reverse order over the file, and a second device over it too.
    const lines = Array.from({ length: 256 }, (_, i) => `${i * 128} 128 linear ${img} ${(255 - i) * 128}`).join('\n');
    const srv = await startServer(['--device', 'rev', lines, '--device', 'all', `0 32768 linear ${img} 0`], { dir });
    await nbdsh(null, `
data = open(${JSON.stringify(img)}, 'rb').read()
h = nbd.NBD()
h.connect_uri(${JSON.stringify(srv.uri('rev'))})
for i in (0, 7, 200, 255):
    assert h.pread(65536, i * 65536) == data[(255 - i) * 65536:(256 - i) * 65536], i
`);
    expect((await threadCounters(srv, 'rev')).mappedReads).toBe(mapped(dir, 4));
    const maps = readFileSync(`/proc/${srv.proc.pid}/maps`, 'utf8').split('\n').filter((l) => l.endsWith(img));
    expect(maps).toHaveLength(mapped(dir, 1));
    await srv.stop();
  });

  it('never fill the holes of a sparse image on tmpfs: large reads on every path leave it without blocks', async () => {
    // tmpfs gives a hole a page for good when a mapping's read fault touches it (file_view.h,
    // readable.h): such files are neither mapped nor faulted in before a sendfile.
    const dir = mkdtempSync('/dev/shm/dmkit-holes-');
    try {
      const img = join(dir, 'sparse.img');
      writeFileSync(img, '');
      truncateSync(img, 16 * MiB);
      const reads = [[0, 64 * KiB], [MiB, 256 * KiB], [2 * MiB, 2 * MiB], [8 * MiB, 4 * MiB]];
      for (const args of [[], ['--loop-receive']]) {
        const srv = await startServer([...args, '--device', 'holes', `0 32768 linear ${img} 0`], { dir });
        // Simple replies: with structured ones, zeroes are the event loop's hole chunks.
        await nbdsh(null, `
h = nbd.NBD()
h.set_request_structured_replies(False)
h.connect_uri(${JSON.stringify(srv.uri('holes'))})
for off, n in ${JSON.stringify(reads)}:
    assert h.pread(n, off) == bytes(n), (off, n)
h.shutdown()
`);
        const c = await threadCounters(srv, 'holes');
        expect(args.length ? c.sentFromFiles : c.threadReads).toBeGreaterThan(0); // the paths under test ran
        await srv.stop();
        expect(statSync(img).blocks, `after ${args.join(' ') || 'the threads'}`).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('map at most 1024 image files; reads of the files past that go by pread, byte-exact', async () => {
    const dir = tempDir();
    const FILES = 1030;
    // One 64 KiB segment over each of 1030 files of 64 KiB: every mapping a file of its own.
    const files = Array.from({ length: FILES }, (_, i) => join(dir, `f${i}.img`));
    files.forEach((f, i) => writeFileSync(f, testBytes(64 * KiB, 100 + i)));
    const lines = files.map((f, i) => `${i * 128} 128 linear ${f} 0`).join('\n');
    const srv = await startServer(['--device', 'many', lines], { dir });
    await nbdsh(null, `
h = nbd.NBD()
h.connect_uri(${JSON.stringify(srv.uri('many'))})
for i, f in enumerate(${JSON.stringify(files)}):
    assert h.pread(65536, i * 65536) == open(f, 'rb').read(), i
h.shutdown()
`);
    const c = await threadCounters(srv, 'many');
    expect(c.threadReads).toBe(FILES); // all by the thread, mapped or not
    expect(c.mappedReads).toBe(mapped(dir, 1024));
    const maps = readFileSync(`/proc/${srv.proc.pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(`${dir}/f`));
    expect(maps).toHaveLength(mapped(dir, 1024));
    await srv.stop();
  }, 60_000);
});

