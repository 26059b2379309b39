// Extended headers (NBD_OPT_EXTENDED_HEADERS): 32-byte requests and replies, 64-bit lengths.
// The real peer is qemu 10 from bookworm-backports (scripts/fetch-qemu-backports.sh), whose
// client asks for them on its own; the spec's edge cases go through a raw client written from
// the spec (it shares no code with host-nbd/).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, openSync, closeSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, run, nbdsh, testBytes, stopAllServers, ROOT, sparseFile } from './helpers.js';
import { RawClient } from './raw-client.js';

const KiB = 1024, MiB = 1 << 20, GiB = 2 ** 30, TiB = 2 ** 40;
const QEMU_BIN = join(ROOT, 'node_modules', '.cache', 'qemu-backports', 'usr', 'bin');
const OPT = { EXPORT_NAME: 1, GO: 7, STRUCTURED_REPLY: 8, EXTENDED_HEADERS: 11 };
const REP = { ACK: 1, ERR_INVALID: 0x80000003, ERR_EXT_HEADER_REQD: 0x8000000a };
const CMD = { READ: 0, WRITE: 1, TRIM: 4, WRITE_ZEROES: 6, BLOCK_STATUS: 7 };
const FLAG = { PAYLOAD_LEN: 1 << 5 };
const TYPE = { NONE: 0, OFFSET_DATA: 1, OFFSET_HOLE: 2, BLOCK_STATUS: 5, BLOCK_STATUS_EXT: 6, ERROR: 0x8001, ERROR_OFFSET: 0x8002 };
const EINVAL = 22;

function fileBytes(path, offset, length) {
  const fd = openSync(path, 'r');
  const b = Buffer.alloc(length);
  readSync(fd, b, 0, length, offset);
  closeSync(fd);
  return b;
}

function putBytes(path, offset, bytes) {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

/** Runs a qemu 10 tool; its output and its traces (stderr) together. */
async function qemu(tool, args) {
  const r = await run(join(QEMU_BIN, tool), args);
  if (r.code !== 0) throw new Error(`${tool} exited with ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout + r.stderr;
}

/** An extended request header, as the spec lays it out. */
function extRequest(type, flags, cookie, offset, length) {
  const h = Buffer.alloc(32);
  h.writeUInt32BE(0x21e41c71, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(BigInt(cookie), 8);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeBigUInt64BE(BigInt(length), 24);
  return h;
}

/** One extended reply chunk: its header fields and payload, or null if the server closed. */
async function extReply(c) {
  const h = await c.read(32);
  if (!h) return null;
  expect(h.readUInt32BE(0).toString(16)).toBe('6e8a278c');
  const length = Number(h.readBigUInt64BE(24));
  const payload = length ? await c.read(length) : Buffer.alloc(0);
  return {
    flags: h.readUInt16BE(4), type: h.readUInt16BE(6), cookie: h.readBigUInt64BE(8),
    offset: h.readBigUInt64BE(16), payload: /** @type {Buffer} */ (payload),
  };
}

/** Handshake, extended headers, base:allocation, GO. */
async function extendedClient(socket, name) {
  const c = await RawClient.connect(socket);
  await c.handshake();
  c.option(OPT.EXTENDED_HEADERS);
  expect(await c.optionReply()).toMatchObject({ option: OPT.EXTENDED_HEADERS, type: REP.ACK });
  const n = Buffer.from(name), q = Buffer.from('base:allocation');
  const meta = Buffer.alloc(4 + n.length + 4 + 4 + q.length);
  meta.writeUInt32BE(n.length, 0); n.copy(meta, 4);
  meta.writeUInt32BE(1, 4 + n.length);
  meta.writeUInt32BE(q.length, 8 + n.length); q.copy(meta, 12 + n.length);
  c.option(10, meta); // SET_META_CONTEXT
  expect((await c.optionReply())?.type).toBe(4); // META_CONTEXT
  expect((await c.optionReply())?.type).toBe(REP.ACK);
  expect(await c.go(name)).toBe(REP.ACK);
  return c;
}

describe('extended headers', () => {
  let srv, dir, img, big;

  beforeAll(async () => {
    if (!existsSync(join(QEMU_BIN, 'qemu-io'))) {
      throw new Error(`no qemu 10 client at ${QEMU_BIN}: run scripts/ensure-test-deps.sh (npm test does)`);
    }
    dir = tempDir();
    img = join(dir, 'disk.img');
    big = join(dir, 'big.img');
    sparseFile(img, 6 * GiB);
    sparseFile(big, 3 * TiB);
    srv = await startServer([
      '--device', 'disk', `0 ${(6 * GiB) / 512} linear ${img} 0`,
      '--device', 'big', `0 ${(3 * TiB) / 512} linear ${big} 0`,
    ], { dir });
  });

  afterAll(async () => {
    expect((await srv.stop()).code).toBe(0);
    await stopAllServers();
  });

  it('qemu 10 negotiates them and reads back what it wrote, past 4 GiB too, byte-exact on the file', async () => {
    const out = await qemu('qemu-io', ['--trace', 'nbd_receive_option_reply', '-f', 'raw', srv.uri('disk'),
      '-c', 'write -P 0x5a 4096 1M', '-c', 'read -P 0x5a 4096 1M',
      '-c', 'write -P 0xa5 5G 65536', '-c', 'read -P 0xa5 5G 65536',
      '-c', 'write -P 0x33 100 1000', '-c', 'read -P 0x33 100 1000']);
    expect(out).toMatch(/option reply 11 \(extended headers\), type 1 \(ack\)/);
    expect(out).not.toMatch(/verification failed|failed/i);
    expect(fileBytes(img, 5 * GiB, 65536).equals(Buffer.alloc(65536, 0xa5))).toBe(true);
    expect(fileBytes(img, 4096, 8192).equals(Buffer.alloc(8192, 0x5a))).toBe(true);
    await srv.waitLog(/export disk, extended headers, base:allocation/);
  });

  it('qemu 10 zeroes 4 GiB in one request and its map sees a zero extent longer than 4 GiB', async () => {
    const out = await qemu('qemu-io', ['--trace', 'nbd_send_request', '-f', 'raw', srv.uri('disk'),
      '-c', 'write -z -n 1G 4G', '-c', 'read -P 0 1G 64k']);
    expect(out).toMatch(/\.len = 4294967296, .*\.type = 6 \(write zeroes\)/);
    const map = JSON.parse((await run(join(QEMU_BIN, 'qemu-img'), ['map', '--output=json', '-f', 'raw', srv.uri('disk')])).stdout);
    const zero = map.find((e) => e.start <= 2 * GiB && e.start + e.length > 2 * GiB);
    expect(zero).toMatchObject({ zero: true, data: false });
    expect(zero.length).toBeGreaterThan(4 * GiB); // one 64-bit extent (BLOCK_STATUS_EXT)
  });

  it('replies echo the cookie and the offset as sent; a WRITE takes its payload with or without PAYLOAD_LEN', async () => {
    const c = await extendedClient(srv.socket, 'disk');
    const data = testBytes(64 * KiB, 7);
    c.write(Buffer.concat([extRequest(CMD.WRITE, FLAG.PAYLOAD_LEN, 0x0102030405060708n, 3 * MiB, data.length), data]));
    expect(await extReply(c)).toMatchObject({ flags: 1, type: TYPE.NONE, cookie: 0x0102030405060708n, offset: BigInt(3 * MiB) });
    // qemu's client sends its writes without the flag; the payload follows all the same.
    c.write(Buffer.concat([extRequest(CMD.WRITE, 0, 2, 3 * MiB + data.length, 512), Buffer.alloc(512, 0xee)]));
    expect(await extReply(c)).toMatchObject({ type: TYPE.NONE, cookie: 2n });
    c.write(extRequest(CMD.READ, 0, 3, 3 * MiB, data.length + 512));
    const r = await extReply(c);
    expect(r).toMatchObject({ flags: 1, type: TYPE.OFFSET_DATA, cookie: 3n, offset: BigInt(3 * MiB) });
    expect(Number(r?.payload.readBigUInt64BE(0))).toBe(3 * MiB);
    expect(r?.payload.subarray(8).equals(Buffer.concat([data, Buffer.alloc(512, 0xee)]))).toBe(true);
    // Refused past the end: the error chunk echoes an offset no JS number holds exactly.
    c.write(extRequest(CMD.READ, 0, 4, 0xfffffffffffffe00n, 512));
    const e = await extReply(c);
    expect(e).toMatchObject({ flags: 1, type: TYPE.ERROR, cookie: 4n, offset: 0xfffffffffffffe00n });
    expect(e?.payload.readUInt32BE(0)).toBe(EINVAL);
    c.destroy();
  });

  it('a payload on a command that takes none is read and refused, and the stream stays in step', async () => {
    const c = await extendedClient(srv.socket, 'disk');
    c.write(Buffer.concat([extRequest(CMD.TRIM, FLAG.PAYLOAD_LEN, 1, 0, 4096), Buffer.alloc(4096, 0x21)]));
    const e = await extReply(c);
    expect(e).toMatchObject({ type: TYPE.ERROR, cookie: 1n });
    expect(e?.payload.readUInt32BE(0)).toBe(EINVAL);
    c.write(extRequest(CMD.READ, 0, 2, 4096, 4096));
    expect(await extReply(c)).toMatchObject({ type: TYPE.OFFSET_DATA, cookie: 2n });
    c.destroy();
  });

  it('a payload longer than the maximum request closes that connection only', async () => {
    const c = await extendedClient(srv.socket, 'disk');
    c.write(extRequest(CMD.WRITE, FLAG.PAYLOAD_LEN, 1, 0, 2 ** 40));
    expect(await c.closed()).toBe(true);
    await srv.waitLog(/WRITE: a payload of 1099511627776 bytes is larger than the maximum request size/);
    await nbdsh(srv.uri('disk'), 'h.pwrite(b"x" * 512, 0); assert h.pread(512, 0) == b"x" * 512');
  });

  it('haggling: no data allowed, no way back to structured replies, no NBD_OPT_EXPORT_NAME', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    c.option(OPT.EXTENDED_HEADERS, Buffer.from('x'));
    expect((await c.optionReply())?.type).toBe(REP.ERR_INVALID);
    c.option(OPT.EXTENDED_HEADERS);
    expect((await c.optionReply())?.type).toBe(REP.ACK);
    c.option(OPT.STRUCTURED_REPLY);
    expect((await c.optionReply())?.type).toBe(REP.ERR_EXT_HEADER_REQD);
    c.option(OPT.EXPORT_NAME, Buffer.from('disk'));
    expect(await c.closed()).toBe(true);
    await srv.waitLog(/NBD_OPT_EXPORT_NAME after extended headers/);
  });

  it('64-bit effect lengths: 2.5 TiB trimmed and 6 GiB zeroed in one request each, status in 64-bit extents', async () => {
    // More sectors than 32 bits count: the trim reaches the core in pieces, and the file as holes.
    putBytes(big, 4.5 * GiB, Buffer.alloc(4096, 0x77));
    putBytes(big, 2.25 * TiB, Buffer.alloc(4096, 0x77));
    putBytes(big, 2.5 * TiB, Buffer.alloc(4096, 0x78)); // just past the trim: kept
    const c = await extendedClient(srv.socket, 'big');
    c.write(extRequest(CMD.TRIM, 0, 1, GiB, 2.5 * TiB - GiB));
    expect(await extReply(c)).toMatchObject({ type: TYPE.NONE, cookie: 1n, offset: BigInt(GiB) });
    expect(fileBytes(big, 4.5 * GiB, 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(fileBytes(big, 2.25 * TiB, 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(fileBytes(big, 2.5 * TiB, 4096).equals(Buffer.alloc(4096, 0x78))).toBe(true);
    putBytes(big, TiB + 5 * GiB, Buffer.alloc(4096, 0x66));
    c.write(extRequest(CMD.WRITE_ZEROES, 0, 2, TiB, 6 * GiB));
    expect(await extReply(c)).toMatchObject({ type: TYPE.NONE, cookie: 2n });
    expect(fileBytes(big, TiB + 5 * GiB, 4096).equals(Buffer.alloc(4096))).toBe(true);
    c.write(Buffer.concat([extRequest(CMD.WRITE, FLAG.PAYLOAD_LEN, 4, 2.75 * TiB, 4096), Buffer.alloc(4096, 0x55)]));
    expect(await extReply(c)).toMatchObject({ type: TYPE.NONE, cookie: 4n });
    c.write(extRequest(CMD.BLOCK_STATUS, 0, 3, 0, 3 * TiB));
    const s = await extReply(c);
    expect(s).toMatchObject({ flags: 1, type: TYPE.BLOCK_STATUS_EXT, cookie: 3n, offset: 0n });
    const p = /** @type {Buffer} */ (s?.payload);
    expect(p.readUInt32BE(0)).toBe(1); // the base:allocation context id
    const count = p.readUInt32BE(4);
    expect(p.length).toBe(8 + 16 * count);
    const extents = Array.from({ length: count }, (_, i) => ({ length: Number(p.readBigUInt64BE(8 + 16 * i)), flags: p.readUInt32BE(20 + 16 * i) }));
    expect(extents[0].length).toBeGreaterThan(2 ** 32); // a hole longer than 32 bits can say
    expect(extents[0].flags & 2).toBe(2); // reads as zeroes
    let at = 0;
    for (const e of extents) { if (at <= 2.75 * TiB && 2.75 * TiB < at + e.length) expect(e.flags & 1).toBe(0); at += e.length; }
    c.destroy();
  });
});
