// Clients that vanish mid-request: whatever they had acknowledged stays, whatever they were
// sending is dropped whole, and the server closes their side and keeps serving. In-process
// server, so the test can watch its connection count go back to zero.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { NbdServer } from '../../host-nbd/server/server.js';
import { tempDir } from '../nbd/helpers.js';
import { RawClient } from '../nbd/raw-client.js';
import { NbdClient } from './lib/nbd-client.js';
import { sectorsOf } from './lib/pattern.js';
import { View } from './lib/history.js';
import { Workload, readAll, rng } from './lib/workload.js';

const MiB = 1 << 20;
const WRITE = 1;

async function until(cond, ms = 5000) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe('clients disconnecting mid-write', () => {
  let dir, registry, server, socket;
  beforeEach(async () => {
    dir = tempDir();
    socket = join(dir, 'nbd.sock');
    writeFileSync(join(dir, 'd.img'), sectorsOf(0, 16384, 0));
    registry = await DeviceRegistry.create();
    await registry.create('disk', `0 16384 linear ${join(dir, 'd.img')} 0`);
    server = new NbdServer({ exports: registry });
    await server.listenUnix(socket);
  });
  afterEach(async () => {
    await server.close();
    await registry.close();
  });

  it('a refused oversized WRITE whose payload is cut off: the server closes that connection', async () => {
    const c = await RawClient.connect(socket);
    await c.handshake();
    expect(await c.go('disk')).toBe(1);
    c.request(WRITE, 0, 1, 0, 0x7fffffff, Buffer.alloc(200_000, 7)); // 2 GiB announced, refused, payload skipped
    await until(() => [...server.connections][0]?.tx?.requests === 1);
    c.destroy();
    expect(await until(() => server.connections.size === 0), 'connection closed after the client left').toBe(true);
    expect(await until(() => server.memory.held === 0)).toBe(true);
  });

  it('killed mid-workload, again and again: acknowledged writes stay, the server serves on', async () => {
    const view = new View('disk', 16384, 0);
    const random = rng(11);
    for (let round = 0; round < 8; round++) {
      const c = await NbdClient.connect({ socket, exportName: 'disk' });
      const load = new Workload(c, view, { depth: 16, maxSectors: 512, readShare: 0.2, random }).start();
      await new Promise((r) => setTimeout(r, 30 + random() * 150));
      c.destroy(); // mid-payload, usually: writes up to 256 KiB are on the wire
      await load.stop();
      expect(load.mismatches).toEqual([]);
      expect(load.errorReplies).toEqual([]);
      // The requests the dead client had started still run (and may land) until the server
      // finished them (their buffers given back): only then may another connection rely on the
      // order of its own writes to the same place.
      expect(await until(() => server.connections.size === 0 && server.memory.held === 0)).toBe(true);
    }
    expect(await until(() => server.connections.size === 0 && server.memory.held === 0), 'every payload and read buffer is given back').toBe(true);
    const c = await NbdClient.connect({ socket, exportName: 'disk' });
    const data = await readAll(c, 16384 * 512);
    // Every acknowledged write is there; a write cut off mid-payload never happened, so the
    // sectors hold an acknowledged write or one whose reply was lost, never anything else.
    expect(view.check(data, 0, 'acked')).toEqual([]);
    await c.close();
  });
});
