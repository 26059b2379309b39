// Large reads of snapshot devices go from the origin and COW files straight to the client's
// socket (sendfile), like linear's. The snapshot must still see the origin as it was: a read
// sent from the origin file counts as running until the socket took its bytes, so an origin
// write that needs that chunk copied waits for it, as it waits for any snapshot read.
import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { NbdServer } from '../../host-nbd/server/server.js';
import { loadFileSender } from '../../host-nbd/server/file-sender.js';
import { tempDir, testBytes, sparseFile } from './helpers.js';
import { RawClient, MAGIC, requestHeader as header } from './raw-client.js';

const MiB = 1 << 20;
const READ = 0, WRITE = 1;
const SIZE = 32 * MiB;
const SECTORS = SIZE / 512;

/** One simple reply: its cookie, error and `length` bytes of data when there is no error. */
async function reply(c, length, ms = 20_000) {
  const h = await c.read(16, ms);
  if (!h) throw new Error('closed before the reply');
  expect(h.readUInt32BE(0)).toBe(MAGIC.SIMPLE);
  const error = h.readUInt32BE(4);
  return { cookie: Number(h.readBigUInt64BE(8)), error, data: error === 0 && length > 0 ? await c.read(length, ms) : null };
}

describe('snapshot reads sent from the backing files', () => {
  let dir, data, registry, server, socket, sends;

  beforeEach(async () => {
    dir = tempDir();
    socket = join(dir, 'nbd.sock');
    const img = join(dir, 'origin.img'), cow = join(dir, 'cow.img');
    data = testBytes(SIZE, 11);
    writeFileSync(img, data);
    sparseFile(cow, SIZE);
    registry = await DeviceRegistry.create();
    await registry.create('base', `0 ${SECTORS} snapshot-origin ${img}`);
    await registry.create('snap', `0 ${SECTORS} snapshot ${img} ${cow} N 8`);
    const { sender, why } = loadFileSender(128 * 1024);
    expect(why).toBeNull(); // the addon is built by npm install; without it this path is not tested
    const s = /** @type {NonNullable<typeof sender>} */ (sender);
    sends = [];
    server = new NbdServer({
      exports: registry,
      sendFiles: { min: s.min, checkReadable: s.checkReadable, sendPieces: (fd, pieces, waitMs, done) => { sends.push(pieces.length); s.sendPieces(fd, pieces, waitMs, done); } },
    });
    await server.listenUnix(socket);
  });

  afterEach(async () => {
    await server?.close();
    await registry.close();
  });

  async function client(name) {
    const c = await RawClient.connect(socket);
    await c.handshake();
    expect(await c.go(name)).toBe(1);
    return c;
  }

  async function write(c, offset, bytes) {
    c.write(Buffer.concat([header(WRITE, 7, offset, bytes.length), bytes]));
    expect((await reply(c, 0)).error).toBe(0);
  }

  async function read(c, offset, length) {
    c.write(header(READ, 8, offset, length));
    const r = await reply(c, length);
    expect(r.error).toBe(0);
    return /** @type {Buffer} */ (r.data);
  }

  it('a snapshot with chunks in the COW file reads them and the rest of the origin, byte-exact, by sendfile', async () => {
    const base = await client('base'), snap = await client('snap');
    const want = Buffer.from(data);
    // Origin writes copy chunks out (the snapshot keeps the old bytes); snapshot writes land in
    // the COW file (the origin keeps its bytes). A page here and there, some of them adjacent.
    for (let i = 0; i < 16; i++) await write(base, i * 300 * 1024 & ~4095, testBytes(4096, 100 + i));
    for (let i = 0; i < 16; i++) {
      const at = (i * 500 * 1024 + 8192) & ~4095, bytes = testBytes(8192, 200 + i);
      await write(snap, at, bytes);
      bytes.copy(want, at);
    }
    const before = sends.length;
    expect((await read(snap, 0, 8 * MiB)).equals(want.subarray(0, 8 * MiB))).toBe(true);
    expect(sends.length).toBeGreaterThan(before); // it went by sendfile
    expect(sends[sends.length - 1]).toBeGreaterThan(2); // in pieces of both files
    base.destroy(); snap.destroy();
  });

  it('an origin write waits for a snapshot read still sending that chunk from the origin file', async () => {
    const reader = await client('snap');
    reader.sock.pause(); // the read's send fills the socket and waits for the client
    reader.write(header(READ, 1, 0, 16 * MiB));
    // Its send starts once its pages are in the page cache (readable.h): 16 MiB, in the pool.
    await vi.waitFor(() => expect(sends.length).toBe(1), { timeout: 5000 });
    // A write to the origin near the end of that read: its chunk must be copied first, and the
    // copy waits until the read has all its bytes (the last of them spilled to memory when the
    // send's wait ends), so the reader never sees the new bytes.
    const writer = await client('base');
    const fresh = testBytes(4096, 99);
    await write(writer, 15 * MiB, fresh);
    reader.sock.resume();
    const r = await reply(reader, 16 * MiB);
    expect(r.error).toBe(0);
    expect(/** @type {Buffer} */ (r.data).equals(data.subarray(0, 16 * MiB))).toBe(true);
    // And afterwards the snapshot keeps the old page, the origin has the new one.
    expect((await read(reader, 15 * MiB, 4096)).equals(data.subarray(15 * MiB, 15 * MiB + 4096))).toBe(true);
    expect((await read(writer, 15 * MiB, 4096)).equals(fresh)).toBe(true);
    reader.destroy(); writer.destroy();
  });
});
