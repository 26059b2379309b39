// Per-connection limits of an in-process NbdServer (small limits, so tests are quick): the
// number of clients, the handshake timeout, the memory a client may make the server hold, and
// shutdown with requests in flight.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { NbdServer } from '../../host-nbd/server/server.js';
import { tempDir, testBytes, run, ok } from './helpers.js';
import { RawClient } from './raw-client.js';

const MiB = 1 << 20;

async function waitFor(cond, ms = 5000) {
  for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > end) throw new Error('timed out waiting');
  }
}
const READ = 0, WRITE = 1;

describe('connection limits', () => {
  let dir, registry, server, socket, logs;

  async function start(limits) {
    server = new NbdServer({ exports: registry, limits, log: (l) => logs.push(l), onError: (l) => logs.push(l) });
    await server.listenUnix(socket);
  }

  beforeEach(async () => {
    dir = tempDir();
    socket = join(dir, 'nbd.sock');
    logs = [];
    const img = join(dir, 'd.img');
    writeFileSync(img, testBytes(32 * MiB, 3));
    registry = await DeviceRegistry.create();
    await registry.create('disk', `0 ${(32 * MiB) / 512} linear ${img} 0`);
  });

  afterEach(async () => {
    await server?.close();
    await registry.close();
  });

  it('past maxConnections a client is closed before the greeting; once one leaves, nbdinfo gets in', async () => {
    await start({ maxConnections: 2 });
    const held = [await RawClient.connect(socket), await RawClient.connect(socket)];
    for (const c of held) expect((await c.read(18))?.subarray(0, 8).toString()).toBe('NBDMAGIC');
    const third = await RawClient.connect(socket);
    expect(await third.read(18)).toBeNull(); // closed with no greeting
    const refused = await run('nbdinfo', ['--size', `nbd+unix:///disk?socket=${socket}`]);
    expect(refused.code).not.toBe(0);
    expect(logs.join('\n')).toMatch(/refused: 2 clients are connected already \(--max-connections\); 1 refused so far/);
    held[0].sock.destroy();
    await waitFor(() => server.connections.size === 1);
    expect(await ok('nbdinfo', ['--size', `nbd+unix:///disk?socket=${socket}`])).toBe(`${32 * MiB}\n`);
  });

  it('a client that does not finish the handshake in time is disconnected', async () => {
    await start({ handshakeMs: 300 });
    const c = await RawClient.connect(socket);
    await c.read(18);
    const t0 = Date.now();
    expect(await c.closed(5000)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(logs.join('\n')).toMatch(/no transmission phase after 300 ms/);
  });

  it('a client that sends requests without reading replies is throttled, not fed memory', async () => {
    const cap = 2 * MiB;
    await start({ connectionMemory: cap });
    const c = await RawClient.connect(socket);
    await c.handshake();
    expect(await c.go('disk')).toBe(1);
    // 64 reads of 512 KiB = 32 MiB of replies, none read for a while.
    const n = 64, size = 512 * 1024;
    for (let i = 0; i < n; i++) c.request(READ, 0, i, i * size, size);
    let peak = 0;
    const conn = [...server.connections][0];
    const sample = setInterval(() => { peak = Math.max(peak, conn.tx.held); }, 5);
    c.sock.pause();
    await new Promise((r) => setTimeout(r, 500));
    peak = Math.max(peak, conn.tx.held);
    // What it holds stays within the cap plus the one request that crossed it.
    expect(peak).toBeLessThanOrEqual(cap + size);
    expect(conn.tx.requests).toBeLessThan(n); // the rest wait unread in the socket
    c.sock.resume();
    const expected = testBytes(32 * MiB, 3);
    for (let i = 0; i < n; i++) {
      const r = await c.simpleReply(size);
      expect(r?.error).toBe(0);
      const cookie = /** @type {number} */ (r?.cookie);
      expect(Buffer.compare(/** @type {Buffer} */ (r?.data), expected.subarray(cookie * size, (cookie + 1) * size))).toBe(0);
    }
    clearInterval(sample);
    c.destroy();
  });

  it('shutdown answers the requests it started, then closes; requests it did not start never happen', async () => {
    await start({});
    const c = await RawClient.connect(socket);
    await c.handshake();
    expect(await c.go('disk')).toBe(1);
    for (let i = 0; i < 16; i++) c.request(WRITE, 0, i, i * MiB, MiB, Buffer.alloc(MiB, i + 1));
    const answered = new Set();
    for (let k = 0; k < 4; k++) answered.add((await c.simpleReply())?.cookie);
    const closing = server.close();
    for (;;) {
      const r = await c.simpleReply();
      if (!r) break;
      expect(r.error).toBe(0);
      answered.add(r.cookie);
    }
    await closing;
    expect(await c.closed()).toBe(true);
    const exp = registry.getExport('disk');
    const original = testBytes(32 * MiB, 3);
    for (let i = 0; i < 16; i++) {
      const got = await new Promise((resolve) => exp.read(i * MiB, MiB, (e, ptr, skip) => {
        const bytes = Buffer.from(registry.engine.mem().subarray(ptr + skip, ptr + skip + MiB));
        exp.free(ptr);
        resolve(bytes);
      }));
      if (answered.has(i)) expect(got.every((x) => x === i + 1), `write ${i} was answered`).toBe(true);
      else expect(Buffer.compare(got, original.subarray(i * MiB, (i + 1) * MiB)), `write ${i} was not answered`).toBe(0);
    }
  });
});

describe('sparse images created on request', () => {
  it('--image style creation makes a sparse file of the given size', async () => {
    const dir = tempDir();
    const registry = await DeviceRegistry.create();
    const path = join(dir, 'new.img');
    registry.engine.addFile(path, { createBytes: 8 * MiB });
    await registry.create('n', `0 ${(8 * MiB) / 512} linear ${path} 0`);
    expect(registry.getExport('n').size()).toBe(8 * MiB);
    await registry.close();
    const st = statSync(path);
    expect(st.size).toBe(8 * MiB);
    expect(st.blocks).toBe(0);
  });
});
