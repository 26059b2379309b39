// How an accepted socket's bytes move (docs/nbd.md, "Socket I/O"): large WRITE payloads land
// straight in core memory even when a client sends them back to back, and a connection reads
// requests ahead only up to limits.pipelineBytes.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { NbdServer } from '../../host-nbd/server/server.js';
import { DEFAULT_LIMITS } from '../../host-nbd/server/limits.js';
import { tempDir, testBytes } from './helpers.js';
import { RawClient, requestHeader as header } from './raw-client.js';

const MiB = 1 << 20;
const READ = 0, WRITE = 1;

describe('socket I/O of an accepted connection', () => {
  let dir, img, registry, server, socket;

  beforeEach(async () => {
    dir = tempDir();
    socket = join(dir, 'nbd.sock');
    img = join(dir, 'd.img');
    writeFileSync(img, Buffer.alloc(32 * MiB));
    registry = await DeviceRegistry.create();
    await registry.create('disk', `0 ${(32 * MiB) / 512} linear ${img} 0`);
    server = new NbdServer({ exports: registry });
    await server.listenUnix(socket);
  });

  afterEach(async () => {
    await server?.close();
    await registry.close();
  });

  async function client() {
    const c = await RawClient.connect(socket);
    await c.handshake();
    expect(await c.go('disk')).toBe(1);
    return { c, conn: [...server.connections][0] };
  }

  it('large WRITE payloads sent back to back go straight into core memory, not through a copy', async () => {
    const { c, conn } = await client();
    const n = 24, size = 256 * 1024;
    const data = testBytes(n * size, 7);
    // One socket write: a read of the whole buffer would take each header with most of the
    // payload after it, and those bytes would have to be copied into core memory.
    const parts = [];
    for (let i = 0; i < n; i++) parts.push(header(WRITE, i, i * size, size), data.subarray(i * size, (i + 1) * size));
    c.write(Buffer.concat(parts));
    for (let i = 0; i < n; i++) expect(await c.simpleReply()).toMatchObject({ error: 0 });
    const { placedBytes, copiedBytes } = conn.tx.reader;
    expect(placedBytes + copiedBytes).toBe(n * size);
    // Copied: the first payload (read before the server knew large writes were coming) and the
    // odd tail of a payload that arrived in pieces; reading whole chunks would copy nearly all.
    expect(copiedBytes).toBeLessThan(2 * size);
    c.destroy();
    expect(Buffer.compare(readFileSync(img).subarray(0, n * size), data)).toBe(0);
  });

  it('small writes still share reads (no read per header after a small payload)', async () => {
    const { c, conn } = await client();
    const n = 64, size = 4096;
    const data = testBytes(n * size, 9);
    const parts = [];
    for (let i = 0; i < n; i++) parts.push(header(WRITE, i, i * size, size), data.subarray(i * size, (i + 1) * size));
    c.write(Buffer.concat(parts));
    for (let i = 0; i < n; i++) expect(await c.simpleReply()).toMatchObject({ error: 0 });
    expect(conn.tx.reader.copiedBytes).toBe(n * size);
    c.destroy();
  });

  it('requests are read ahead only while the connection holds less than pipelineBytes', async () => {
    const { c, conn } = await client();
    const size = MiB, n = 24;
    // 24 MiB of reads whose replies the client does not take for a while.
    const parts = [];
    for (let i = 0; i < n; i++) parts.push(header(READ, i, i * size, size));
    c.sock.pause();
    c.write(Buffer.concat(parts));
    let peak = 0;
    const sample = setInterval(() => { peak = Math.max(peak, conn.tx.held); }, 2);
    await new Promise((r) => setTimeout(r, 400));
    peak = Math.max(peak, conn.tx.held);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(DEFAULT_LIMITS.pipelineBytes + size);
    expect(conn.tx.requests).toBeLessThan(n); // the rest wait unread in the socket
    c.sock.resume();
    for (let i = 0; i < n; i++) expect(await c.simpleReply(size)).toMatchObject({ error: 0 });
    clearInterval(sample);
    c.destroy();
  });
});
