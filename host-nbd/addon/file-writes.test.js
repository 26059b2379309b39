// FileWrites (file_writes.h): how many writes receive threads completed on a file, one count per
// file whatever descriptor or name it is opened by, so that the event loop's handle
// (file-backing.js) reads the count the threads add to through the write map's duplicates. Here a
// Receiver on an accepted socket writes through a hard link's descriptor.
import { describe, it, expect, afterAll } from 'vitest';
import net from 'node:net';
import { openSync, closeSync, writeFileSync, linkSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { threadWritesOf, loadReceiveThreads } from '../server/receive-threads.js';
import { tempDir } from '../../test/temp-dir.js';

const { threads } = loadReceiveThreads();

/** A simple WRITE request header (no flags). */
function writeHeader(cookie, offset, length) {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(0x25609513, 0);
  h.writeUInt16BE(1, 6);
  h.writeBigUInt64BE(BigInt(cookie), 8);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length, 24);
  return h;
}

describe.skipIf(!threads)('FileWrites', () => {
  const dir = tempDir('dmkit-file-writes-');
  const fds = /** @type {number[]} */ ([]);
  const open = (path, flags = 'r+') => { const fd = openSync(path, flags); fds.push(fd); return fd; };
  afterAll(() => { for (const fd of fds) closeSync(fd); });

  it('counts a receive thread\'s write by the time its reply arrives, on the one count of the file it wrote (any name, any descriptor), not on another file\'s', async () => {
    const th = /** @type {NonNullable<typeof threads>} */ (threads);
    const a = join(dir, 'a.img'), b = join(dir, 'b.img'), alias = join(dir, 'alias.img');
    writeFileSync(a, Buffer.alloc(65536));
    writeFileSync(b, Buffer.alloc(65536));
    linkSync(a, alias);
    const counts = [open(a), open(a, 'r'), open(b)].map((fd) => /** @type {import('../server/receive-threads.js').ThreadWrites} */ (threadWritesOf(fd)));
    expect(counts.map((c) => c.count())).toEqual([0, 0, 0]);
    const map = new th.WriteMap();
    map.publish([[0, 65536, open(alias), 0, 1, 1, 0, 1, 0]]);

    const server = net.createServer({ pauseOnConnect: true });
    const sockPath = join(dir, 's.sock');
    await new Promise((resolve) => server.listen(sockPath, () => resolve(undefined)));
    const accepted = new Promise((resolve) => server.once('connection', resolve));
    const client = net.connect(sockPath);
    const sock = /** @type {net.Socket} */ (await accepted);
    const events = /** @type {Float64Array[]} */ ([]);
    const receiver = new th.Receiver(/** @type {any} */ (sock)._handle.fd, Buffer.alloc(0), map,
      { maxRequest: 1 << 25, structured: false, stallMs: 5000 }, (items) => { for (const i of items) if (i instanceof Float64Array) events.push(i); });
    receiver.releaseOutput(); // the socket's write side is the thread's (no handshake reply is leaving)
    try {
      const reply = new Promise((resolve) => client.once('data', resolve));
      client.write(Buffer.concat([writeHeader(7, 4096, 4096), Buffer.alloc(4096, 9)]));
      const r = /** @type {Buffer} */ (await reply);
      expect(r.readUInt32BE(4)).toBe(0); // no error
      expect(counts.map((c) => c.count())).toEqual([1, 1, 0]);
      expect(readFileSync(a)[4096]).toBe(9);
    } finally {
      events.push(...receiver.stop());
      map.withdraw();
      client.destroy();
      sock.destroy();
      server.close();
    }
    expect(events.length).toBe(1); // the one write, reported to the event loop too
  });

  it('is null for what is not a descriptor', () => {
    expect(threadWritesOf(1 << 30)).toBeNull();
  });
});
