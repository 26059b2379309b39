// Large reads of pass-through devices go from the backing files straight to the client's
// socket (sendfile, host-nbd/server/reply-writer.js). What a client sees must not change:
// the same bytes, every reply whole and never interleaved with another, a slow reader served
// in full, a vanished client costing nobody else anything.
import { describe, it, expect, beforeEach, afterEach, afterAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { NbdServer } from '../../host-nbd/server/server.js';
import { loadFileSender } from '../../host-nbd/server/file-sender.js';
import { tempDir, testBytes, startServer, stopAllServers, nbdsh } from './helpers.js';
import { RawClient, MAGIC, requestHeader as header } from './raw-client.js';

const MiB = 1 << 20;
const READ = 0, WRITE = 1;
const SIZE = 32 * MiB;

/** Reads simple replies in whatever order they come; `lengths` maps cookie -> data length. */
async function replies(c, lengths) {
  /** @type {Map<number, {error: number, data: Buffer | null}>} */
  const got = new Map();
  while (got.size < lengths.size) {
    const h = await c.read(16, 20_000);
    if (!h) throw new Error(`closed after ${got.size} of ${lengths.size} replies`);
    expect(h.readUInt32BE(0)).toBe(MAGIC.SIMPLE);
    const cookie = Number(h.readBigUInt64BE(8));
    const error = h.readUInt32BE(4);
    expect(lengths.has(cookie) && !got.has(cookie)).toBe(true);
    const n = /** @type {number} */ (lengths.get(cookie));
    got.set(cookie, { error, data: error === 0 && n > 0 ? await c.read(n, 20_000) : null });
  }
  return got;
}

describe('reads sent from the backing files (in-process server)', () => {
  let dir, img, data, registry, server, socket, sends, cannotStart;

  beforeEach(async () => {
    dir = tempDir();
    socket = join(dir, 'nbd.sock');
    img = join(dir, 'd.img');
    data = testBytes(SIZE, 5);
    writeFileSync(img, data);
    registry = await DeviceRegistry.create();
    await registry.create('disk', `0 ${SIZE / 512} linear ${img} 0`);
    await registry.create('mixed', `0 ${SIZE / 1024} linear ${img} 0\n${SIZE / 1024} ${SIZE / 1024} zero`);
    const { sender, why } = loadFileSender(128 * 1024);
    expect(why).toBeNull(); // the addon is built by npm install; without it this path is not tested
    sends = [];
    cannotStart = false;
    const counted = {
      min: /** @type {NonNullable<typeof sender>} */ (sender).min,
      checkReadable: /** @type {NonNullable<typeof sender>} */ (sender).checkReadable,
      sendPieces: (fd, pieces, waitMs, done) => {
        if (cannotStart) throw Object.assign(new Error('dup: Too many open files'), { code: 'EMFILE' });
        const total = pieces.reduce((n, p) => n + (Buffer.isBuffer(p) ? p.length : p[2]), 0);
        /** @type {NonNullable<typeof sender>} */ (sender).sendPieces(fd, pieces, waitMs, (e, sent) => {
          sends.push({ total, sent, error: e });
          done(e, sent);
        });
      },
    };
    server = new NbdServer({ exports: registry, sendFiles: counted });
    await server.listenUnix(socket);
  });

  afterEach(async () => {
    await server?.close();
    await registry.close();
  });

  /** Waits until no command runs (a sent read's commands complete after its send). */
  async function settled() {
    const t0 = Date.now();
    while (registry.engine.running > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    expect(registry.engine.running).toBe(0);
  }

  async function client(name = 'disk') {
    const c = await RawClient.connect(socket);
    await c.handshake();
    expect(await c.go(name)).toBe(1);
    return c;
  }

  it('large reads arrive byte-exact, sent natively, among small replies that never interleave with them', async () => {
    const c = await client();
    /** @type {Map<number, number>} */
    const lengths = new Map();
    /** @type {Map<number, [number, number]>} */
    const ranges = new Map();
    const parts = [];
    let cookie = 1;
    const write = testBytes(8192, 77);
    for (let i = 0; i < 24; i++) {
      const off = (i * 1.25 * MiB) % (SIZE - MiB) & ~511;
      parts.push(header(READ, cookie, off, MiB)); lengths.set(cookie, MiB); ranges.set(cookie++, [off, MiB]);
      parts.push(header(READ, cookie, off + 4096, 4096)); lengths.set(cookie, 4096); ranges.set(cookie++, [off + 4096, 4096]);
      parts.push(header(READ, cookie, off, 256 * 1024)); lengths.set(cookie, 256 * 1024); ranges.set(cookie++, [off, 256 * 1024]);
    }
    // A write to a range nobody reads, in the middle of it all.
    parts.push(header(WRITE, cookie, SIZE - 8192, 8192), write); lengths.set(cookie++, 0);
    c.write(Buffer.concat(parts));
    const got = await replies(c, lengths);
    for (const [k, [off, len]] of ranges) {
      const r = /** @type {{error: number, data: Buffer}} */ (got.get(k));
      expect(r.error).toBe(0);
      expect(r.data.equals(data.subarray(off, off + len))).toBe(true);
    }
    await settled(); // the client may have every byte before the server heard its sends end
    expect(sends.every((s) => s.error === null)).toBe(true);
    // Every large read went natively: 24 of 1 MiB and 24 of 256 KiB (their headers included).
    expect(sends.reduce((n, s) => n + s.total, 0)).toBeGreaterThanOrEqual(24 * (MiB + 256 * 1024));
    c.destroy();
  });

  it('a client slow to read gets every byte: what a send could not place goes through Node', async () => {
    const c = await client();
    c.sock.pause();
    /** @type {Map<number, number>} */
    const lengths = new Map();
    const parts = [];
    // Large reads sent from the file, and between them 32 KiB reads answered from core memory
    // (too large to be copied into the reply buffer): their buffers must outlive the spill.
    const small = (i) => 16 * MiB + i * 40960;
    for (let i = 0; i < 16; i++) {
      parts.push(header(READ, i + 1, i * MiB, MiB)); lengths.set(i + 1, MiB);
      parts.push(header(READ, 100 + i, small(i), 32768)); lengths.set(100 + i, 32768);
    }
    c.write(Buffer.concat(parts));
    await new Promise((r) => setTimeout(r, 400)); // several times the native send's wait
    // More 32 KiB reads while the first replies still wait: they get buffers of their own.
    const later = (i) => 24 * MiB + i * 40960;
    const more = [];
    for (let i = 0; i < 16; i++) { more.push(header(READ, 200 + i, later(i), 32768)); lengths.set(200 + i, 32768); }
    c.write(Buffer.concat(more));
    await new Promise((r) => setTimeout(r, 100));
    c.sock.resume();
    const got = await replies(c, lengths);
    for (let i = 0; i < 16; i++) {
      expect(got.get(i + 1)?.data?.equals(data.subarray(i * MiB, (i + 1) * MiB))).toBe(true);
      expect(got.get(100 + i)?.data?.equals(data.subarray(small(i), small(i) + 32768))).toBe(true);
      expect(got.get(200 + i)?.data?.equals(data.subarray(later(i), later(i) + 32768))).toBe(true);
    }
    await settled();
    expect(sends.some((s) => s.sent < s.total)).toBe(true); // the spill path ran
    c.destroy();
  });

  it('a send that cannot start (no descriptor to duplicate) leaves its replies to Node, whole', async () => {
    cannotStart = true;
    const c = await client();
    /** @type {Map<number, number>} */
    const lengths = new Map();
    const parts = [];
    for (let i = 0; i < 8; i++) { parts.push(header(READ, i + 1, i * MiB, MiB), header(READ, 100 + i, i * MiB + 512, 512)); lengths.set(i + 1, MiB); lengths.set(100 + i, 512); }
    c.write(Buffer.concat(parts));
    const got = await replies(c, lengths);
    for (let i = 0; i < 8; i++) {
      expect(got.get(i + 1)?.data?.equals(data.subarray(i * MiB, (i + 1) * MiB))).toBe(true);
      expect(got.get(100 + i)?.data?.equals(data.subarray(i * MiB + 512, i * MiB + 1024))).toBe(true);
    }
    await settled();
    expect(sends.length).toBe(0);
    c.destroy();
  });

  it('a device that is not pass-through answers from memory, zeroes and all', async () => {
    const c = await client('mixed');
    const half = SIZE / 2;
    c.write(header(READ, 9, half - MiB, 2 * MiB));
    const got = await replies(c, new Map([[9, 2 * MiB]]));
    const want = Buffer.concat([data.subarray(half - MiB, half), Buffer.alloc(MiB)]);
    expect(got.get(9)?.data?.equals(want)).toBe(true);
    expect(sends.length).toBe(0);
    c.destroy();
  });

  it('a client that vanishes mid-send costs nobody else anything', async () => {
    const gone = await client();
    const parts = [];
    for (let i = 0; i < 24; i++) parts.push(header(READ, i + 1, i * MiB, MiB));
    gone.write(Buffer.concat(parts));
    await new Promise((r) => setTimeout(r, 20));
    gone.destroy();
    const c = await client();
    c.write(header(READ, 1, 3 * MiB, 4 * MiB));
    const got = await replies(c, new Map([[1, 4 * MiB]]));
    expect(got.get(1)?.data?.equals(data.subarray(3 * MiB, 7 * MiB))).toBe(true);
    c.destroy();
    // The vanished client's connection is gone, and no command is left running.
    await settled();
    const t0 = Date.now();
    while (server.connections.size > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(server.connections.size).toBe(0);
  });
});

describe('reads sent from the backing files (dmkit serve, libnbd)', () => {
  afterAll(stopAllServers);

  it('simple and structured replies carry the file\'s bytes; a hole stays a hole', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img'), sparse = join(dir, 's.img');
    writeFileSync(img, testBytes(SIZE, 3));
    const srv = await startServer(['--device', 'disk', `0 ${SIZE / 512} linear ${img} 0`,
      '--image', `${sparse}=${SIZE}`, '--device', 'sparse', `0 ${SIZE / 512} linear ${sparse} 0`], { dir });
    const script = `
import hashlib
want = hashlib.sha256(open(${JSON.stringify(img)}, 'rb').read()).hexdigest()
for structured in (False, True):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    h.connect_uri(${JSON.stringify(srv.uri('disk'))})
    assert h.get_structured_replies_negotiated() == structured
    got = b''.join(h.pread(4 << 20, off) for off in range(0, ${SIZE}, 4 << 20))
    assert hashlib.sha256(got).hexdigest() == want, structured
    h.shutdown()
# A never-written sparse image: its structured read is one hole chunk, not data.
h = nbd.NBD()
h.connect_uri(${JSON.stringify(srv.uri('sparse'))})
chunks = []
def cb(subbuf, offset, status, error):
    chunks.append(status)
    return 0
h.pread_structured(1 << 20, 0, cb)
assert chunks == [nbd.READ_HOLE], chunks
h.shutdown()
`;
    await nbdsh(null, script);
    // dmkit exports counts them: 8 reads of 4 MiB per reply style, sent from the files by the
    // event loop's pool or by the connection's receive thread (both with sendfile).
    const line = (await srv.ctl('exports')).stdout.split('\n').find((l) => l.startsWith('disk\t'));
    const pool = Number(/(\d+) read\(s\) sent from files/.exec(line ?? '')?.[1]);
    const threads = Number(/(\d+) read\(s\) by receive threads/.exec(line ?? '')?.[1]);
    expect(pool + threads).toBe(16);
    await srv.stop();
  });
});
