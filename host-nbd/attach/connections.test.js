// A connection made inside the process must leave the kernel a socket in transmission phase:
// blocking, with no byte of the server's stream swallowed by the handshake. nbdkit (in its
// single-connection mode on our end of the pair) plays the server; plain blocking reads and
// writes on the descriptor play the kernel.
import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { readSync, writeSync } from 'node:fs';
import { loadNative } from './native.js';
import { openConnection } from './connections.js';
import { REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, CMD } from '../protocol/constants.js';
import { DeviceRegistry } from '../devices/registry.js';
import { NbdServer } from '../server/server.js';
import { loadReceiveThreads } from '../server/receive-threads.js';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const native = loadNative();

/** Serves the descriptor with `nbdkit -s` in a child process: the child gets its own copy. */
function nbdkitServes(args) {
  return (/** @type {number} */ fd) => {
    const socket = new net.Socket({ fd, readable: true, writable: true });
    const child = spawn('nbdkit', ['-s', '--exit-with-parent', ...args], { stdio: [socket, socket, 'ignore'] });
    socket.destroy();
    return { socket, done: new Promise((resolve) => child.once('exit', () => resolve(undefined))) };
  };
}

function request(type, handle, offset, length) {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt32BE(type, 4);
  b.writeBigUInt64BE(BigInt(handle), 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

function readExactly(fd, n) {
  const b = Buffer.alloc(n);
  for (let got = 0; got < n;) {
    const r = readSync(fd, b, got, n - got, null);
    if (r === 0) throw new Error('EOF');
    got += r;
  }
  return b;
}

describe('openConnection', () => {
  it('hands over a blocking descriptor already in transmission phase', async () => {
    const { connection, info } = await openConnection(native, nbdkitServes(['memory', '1M']), '');
    try {
      expect(info.size).toBe(1 << 20);
      const data = Buffer.alloc(4096, 0x5a);
      writeSync(connection.clientFd, Buffer.concat([request(CMD.WRITE, 1, 8192, 4096), data]));
      const wrote = readExactly(connection.clientFd, 16);
      expect(wrote.readUInt32BE(0)).toBe(SIMPLE_REPLY_MAGIC);
      expect(wrote.readUInt32BE(4)).toBe(0);
      expect(wrote.readBigUInt64BE(8)).toBe(1n);
      writeSync(connection.clientFd, request(CMD.READ, 2, 8192, 4096));
      const read = readExactly(connection.clientFd, 16 + 4096);
      expect(read.readUInt32BE(4)).toBe(0);
      expect(read.readBigUInt64BE(8)).toBe(2n);
      expect(read.subarray(16).equals(data)).toBe(true);
    } finally {
      connection.abort();
    }
  });

  it("fails with the server's reason and closes both ends when the export is refused", async () => {
    const registry = await DeviceRegistry.create({});
    await registry.create('zeros', '0 8 zero');
    const server = new NbdServer({ exports: registry });
    /** @type {import('node:net').Socket | null} */
    let serverSide = null;
    try {
      const serveFd = (/** @type {number} */ fd) => {
        const conn = server.serveFd(fd, 'test');
        serverSide = /** @type {import('node:net').Socket} */ (conn.input);
        return { socket: serverSide, done: conn.done };
      };
      await expect(openConnection(native, serveFd, 'nosuch'))
        .rejects.toThrow(/no export named 'nosuch'/);
      expect(serverSide?.destroyed).toBe(true);
    } finally {
      await server.close();
      await registry.close();
    }
  });
  it.skipIf(!loadReceiveThreads().threads)('gives the kernel\'s socket a receive thread: its plain WRITE and READ are done by the thread', async () => {
    const { threads } = loadReceiveThreads();
    const dir = mkdtempSync(join(tmpdir(), 'dmkit-attach-conn-'));
    const img = join(dir, 'd.img');
    writeFileSync(img, Buffer.alloc(1 << 20));
    const registry = await DeviceRegistry.create({ writeMaps: threads?.WriteMap });
    await registry.create('lin', `0 ${(1 << 20) / 512} linear ${img} 0`);
    const server = new NbdServer({ exports: registry, receiveThreads: threads });
    const serveFd = (/** @type {number} */ fd) => {
      const conn = server.serveFd(fd, 'test');
      return { socket: /** @type {net.Socket} */ (conn.input), done: conn.done };
    };
    const { connection } = await openConnection(native, serveFd, 'lin');
    // The kernel's side, read without blocking this process (the server runs in it too).
    const kernel = new net.Socket({ fd: native.dupFd(connection.clientFd), readable: true, writable: true });
    connection.closeClient();
    try {
      const data = Buffer.alloc(4096, 0x5a);
      let got = Buffer.alloc(0);
      const replies = new Promise((resolve) => kernel.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (got.length >= 16 + 16 + 4096) resolve(got);
      }));
      kernel.write(Buffer.concat([request(CMD.WRITE, 1, 8192, 4096), data]));
      kernel.write(request(CMD.READ, 2, 8192, 4096));
      await replies;
      expect(got.readUInt32BE(4)).toBe(0);
      expect(got.readBigUInt64BE(8)).toBe(1n);
      expect(got.readUInt32BE(16 + 4)).toBe(0);
      expect(got.readBigUInt64BE(16 + 8)).toBe(2n);
      expect(got.subarray(32).equals(data)).toBe(true);
      expect(readFileSync(img).subarray(8192, 8192 + 4096).equals(data)).toBe(true);
      // The event loop hears of the thread's requests in batches, a millisecond after the last.
      const exp = /** @type {any} */ (registry.getExport('lin'));
      for (let i = 0; i < 100 && exp.writtenByThreads + exp.readByThreads < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(exp.writtenByThreads).toBe(1);
      expect(exp.readByThreads).toBe(1);
    } finally {
      kernel.destroy();
      connection.abort();
      await server.close();
      await registry.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
