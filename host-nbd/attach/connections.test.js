// A connection made inside the process must leave the kernel a socket in transmission phase:
// blocking, with no byte of the server's stream swallowed by the handshake. nbdkit (in its
// single-connection mode on our end of the pair) plays the server; plain blocking reads and
// writes on the descriptor play the kernel.
import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { readSync, writeSync } from 'node:fs';
import { loadNative } from './native.js';
import { openConnection } from './connections.js';
import { REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, CMD } from '../protocol/constants.js';
import { DeviceRegistry } from '../devices/registry.js';
import { NbdServer } from '../server/server.js';

const native = loadNative();

/** Serves the socket with `nbdkit -s` in a child process: the child gets the descriptor itself. */
function nbdkitServes(args) {
  return (socket) => new Promise((resolve) => {
    const child = spawn('nbdkit', ['-s', '--exit-with-parent', ...args], { stdio: [socket, socket, 'ignore'] });
    socket.destroy(); // the child holds its own copy
    child.once('exit', () => resolve());
  });
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
      await expect(openConnection(native, (s) => { serverSide = s; return server.serveSocket(s, 'test').done; }, 'nosuch'))
        .rejects.toThrow(/no export named 'nosuch'/);
      expect(serverSide?.destroyed).toBe(true);
    } finally {
      await server.close();
      await registry.close();
    }
  });
});
