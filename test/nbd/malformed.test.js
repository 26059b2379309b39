// Bad input never takes the server down: malformed handshakes, unknown options and commands,
// oversized requests, clients vanishing mid-request. Each gets the spec's answer (an error
// reply, or only that connection closed) while another client keeps doing verified I/O.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { openSync, ftruncateSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, nbdsh, stopAllServers } from './helpers.js';
import { RawClient } from './raw-client.js';

const OPT = { EXPORT_NAME: 1, LIST: 3, GO: 7, STRUCTURED_REPLY: 8 };
const REP = { ACK: 1, SERVER: 2, ERR_UNSUP: 0x80000001, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006, ERR_TOO_BIG: 0x80000009 };
const CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3 };
const EINVAL = 22, EPERM = 1;

describe('malformed and hostile traffic', () => {
  let srv;
  /** Verified I/O through libnbd on a second connection: the server is still fine. */
  const healthy = (tag) => nbdsh(srv.uri('disk'), `h.pwrite(b"${tag}" * 4096, 8192); assert h.pread(4096, 8192) == b"${tag}" * 4096`);

  beforeAll(async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    const fd = openSync(img, 'w');
    ftruncateSync(fd, 64 << 20);
    closeSync(fd);
    srv = await startServer(['--device', 'disk', `0 ${(64 << 20) / 512} linear ${img} 0`], { dir });
  });
  afterAll(async () => { expect((await srv.stop()).code).toBe(0); });

  it('unknown client flags: that connection is closed, others go on', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake(1 | (1 << 7));
    expect(await c.closed()).toBe(true);
    await healthy('a');
    expect(srv.stderr).toMatch(/client flags 0x81 include unknown bits/);
  });

  it('a bad option magic closes the connection', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    c.write(Buffer.from('NOTMAGIC\0\0\0\x03\0\0\0\0'));
    expect(await c.closed()).toBe(true);
    await healthy('b');
  });

  it('an unknown option gets NBD_REP_ERR_UNSUP and haggling goes on', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    c.option(99, Buffer.from('whatever'));
    expect(await c.optionReply()).toMatchObject({ option: 99, type: REP.ERR_UNSUP });
    c.option(OPT.LIST);
    const first = await c.optionReply();
    expect(first?.type).toBe(REP.SERVER);
    expect(first?.data.subarray(4, 4 + first.data.readUInt32BE(0)).toString()).toBe('disk');
    expect((await c.optionReply())?.type).toBe(REP.ACK);
    c.option(OPT.LIST, Buffer.from('x'));
    expect((await c.optionReply())?.type).toBe(REP.ERR_INVALID);
    c.destroy();
  });

  it('option data over the limit is skipped and refused with NBD_REP_ERR_TOO_BIG', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    c.option(OPT.GO, Buffer.alloc(1 << 20, 0x41));
    expect(await c.optionReply()).toMatchObject({ option: OPT.GO, type: REP.ERR_TOO_BIG });
    expect(await c.go('disk')).toBe(REP.ACK);
    c.request(CMD.READ, 0, 7, 0, 512);
    expect(await c.simpleReply(512)).toMatchObject({ error: 0, cookie: 7 });
    c.destroy();
  });

  it('GO with garbled data gets NBD_REP_ERR_INVALID; an unknown export NBD_REP_ERR_UNKNOWN', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    c.option(OPT.GO, Buffer.from([0, 0, 0, 200, 1, 2]));
    expect((await c.optionReply())?.type).toBe(REP.ERR_INVALID);
    expect(await c.go('nope')).toBe(REP.ERR_UNKNOWN);
    expect(await c.go('disk')).toBe(REP.ACK);
    c.destroy();
  });

  it('NBD_OPT_EXPORT_NAME: an unknown name ends the session; a known one gets size, flags and zero padding', async () => {
    const bad = await RawClient.connect(srv.socket);
    await bad.handshake();
    bad.option(OPT.EXPORT_NAME, Buffer.from('nope'));
    expect(await bad.closed()).toBe(true);
    for (const [flags, bytes] of [[1, 134], [3, 10]]) {
      const c = await RawClient.connect(srv.socket);
      await c.handshake(flags);
      c.option(OPT.EXPORT_NAME, Buffer.from('disk'));
      const r = /** @type {Buffer} */ (await c.read(bytes));
      expect(Number(r.readBigUInt64BE(0))).toBe(64 << 20);
      expect(r.readUInt16BE(8) & 1).toBe(1); // HAS_FLAGS
      expect(r.subarray(10).every((x) => x === 0)).toBe(true);
      c.request(CMD.READ, 0, 1, 0, 16);
      expect(await c.simpleReply(16)).toMatchObject({ error: 0, cookie: 1 });
      c.destroy();
    }
  });

  it('an unknown command gets EINVAL; a bad request magic closes only that connection', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    expect(await c.go('disk')).toBe(REP.ACK);
    c.request(42, 0, 5, 0, 0);
    expect(await c.simpleReply()).toMatchObject({ error: EINVAL, cookie: 5 });
    c.write(Buffer.alloc(28, 0xee));
    expect(await c.closed()).toBe(true);
    await healthy('c');
    expect(srv.stderr).toMatch(/bad request magic 0xeeeeeeee/);
  });

  it('a write over the maximum request size is refused and its payload skipped, not parsed', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    expect(await c.go('disk')).toBe(REP.ACK);
    const big = (32 << 20) + 4096;
    // The payload is full of valid-looking request headers: none may be taken as a request.
    const payload = Buffer.alloc(big);
    for (let at = 0; at + 28 <= big; at += 28) {
      payload.writeUInt32BE(0x25609513, at);
      payload.writeUInt16BE(CMD.WRITE, at + 6);
    }
    c.request(CMD.WRITE, 0, 11, 0, big, payload);
    c.request(CMD.READ, 0, 12, 0, 512);
    // Replies may come in any order (a receive thread answers the READ at once).
    const first = await c.simpleReply();
    const read = first?.cookie === 12 ? { ...first, data: await c.read(512) } : await c.simpleReply(512);
    const write = first?.cookie === 12 ? await c.simpleReply() : first;
    expect(write).toMatchObject({ error: EINVAL, cookie: 11 });
    expect(read).toMatchObject({ error: 0, cookie: 12 });
    expect(read?.data?.length).toBe(512);
    // FLUSH must have offset and length zero
    c.request(CMD.FLUSH, 0, 13, 4096, 0);
    expect(await c.simpleReply()).toMatchObject({ error: EINVAL, cookie: 13 });
    c.destroy();
  });

  it('clients vanishing mid-payload or with requests in flight leave the server serving', async () => {
    for (let i = 0; i < 5; i++) {
      const c = await RawClient.connect(srv.socket);
      await c.handshake();
      expect(await c.go('disk')).toBe(REP.ACK);
      c.request(CMD.WRITE, 0, 1, 1 << 20, 1 << 20, Buffer.alloc(300_000, 0x99)); // 1 MiB announced, 300 KB sent
      for (let k = 0; k < 32; k++) c.request(CMD.READ, 0, 100 + k, k * 65536, 65536);
      c.destroy();
    }
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    expect(await c.go('disk')).toBe(REP.ACK);
    for (let k = 0; k < 64; k++) c.request(CMD.READ, 0, k, k * 4096, 4096);
    c.destroy();
    await healthy('d');
    // The partial write never happened: its range still reads as zeroes.
    await nbdsh(srv.uri('disk'), `assert h.pread(${1 << 20}, ${1 << 20}) == bytes(${1 << 20})`);
  });

  it('DISC: requests before it are answered, then the server closes', async () => {
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    expect(await c.go('disk')).toBe(REP.ACK);
    c.request(CMD.WRITE, 0, 1, 3 << 20, 4096, Buffer.alloc(4096, 0x42));
    c.request(CMD.DISC, 0, 2, 0, 0);
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 1 });
    expect(await c.closed()).toBe(true);
    await nbdsh(srv.uri('disk'), `assert h.pread(4096, ${3 << 20}) == b"\\x42" * 4096`);
  });
});

describe('a read-only export refuses writes at the protocol level', () => {
  it('WRITE gets EPERM, and its payload is skipped', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    const fd = openSync(img, 'w');
    ftruncateSync(fd, 1 << 20);
    closeSync(fd);
    const srv = await startServer(['--read-only', '--device', 'disk', `0 2048 linear ${img} 0`], { dir });
    try {
      const c = await RawClient.connect(srv.socket);
      await c.handshake();
      expect(await c.go('disk')).toBe(REP.ACK);
      c.request(CMD.WRITE, 0, 1, 0, 4096, Buffer.alloc(4096, 1));
      c.request(CMD.READ, 0, 2, 0, 8);
      expect(await c.simpleReply()).toMatchObject({ error: EPERM, cookie: 1 });
      expect(await c.simpleReply(8)).toMatchObject({ error: 0, cookie: 2, data: Buffer.alloc(8) });
      c.destroy();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

afterAll(stopAllServers); // servers a failed test left running
