// The client handshake `dmkit attach` does for the kernel, against real servers (nbdkit,
// qemu-nbd, and dmkit's own), plus the refusals a kernel must never be handed a socket after.
import { describe, it, expect, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { negotiate } from './handshake.js';
import { TFLAG, NBDMAGIC, IHAVEOPT, OPTION_REPLY_MAGIC, OPT, REP } from '../protocol/constants.js';
import { DeviceRegistry } from '../devices/registry.js';
import { NbdServer } from '../server/server.js';

const cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()();
});

function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'dmkit-handshake-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a server process that listens on `socket`; resolves once the socket exists. */
async function startPeer(cmd, args, socket) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  cleanups.push(() => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(undefined);
    child.once('exit', resolve);
    child.kill();
  }));
  for (let i = 0; i < 200 && !existsSync(socket); i++) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!existsSync(socket)) throw new Error(`${cmd} did not listen: ${stderr}`);
}

async function connect(socket) {
  const sock = net.connect(socket);
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  cleanups.push(() => sock.destroy());
  return sock;
}

/** A scripted server for protocol corners no real server takes: answers with `script(sock)`. */
async function scripted(script) {
  const socket = join(tempDir(), 'fake.sock');
  const server = net.createServer((s) => { s.on('error', () => {}); script(s); });
  await new Promise((r) => server.listen(socket, r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return connect(socket);
}

function newstyleGreeting() {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(3, 16);
  return b;
}

describe('negotiate (client side of the fixed newstyle handshake)', () => {
  it('gets size and flags from nbdkit, and the read-only flag when it serves read-only', async () => {
    const dir = tempDir();
    await startPeer('nbdkit', ['-f', '-U', join(dir, 'rw.sock'), 'memory', '3M'], join(dir, 'rw.sock'));
    const rw = await negotiate(await connect(join(dir, 'rw.sock')), '');
    expect(rw.size).toBe(3 << 20);
    expect(rw.flags & TFLAG.HAS_FLAGS).toBeTruthy();
    expect(rw.flags & TFLAG.READ_ONLY).toBe(0);
    await startPeer('nbdkit', ['-f', '-r', '-U', join(dir, 'ro.sock'), 'memory', '1M'], join(dir, 'ro.sock'));
    const ro = await negotiate(await connect(join(dir, 'ro.sock')), '');
    expect(ro.flags & TFLAG.READ_ONLY).toBeTruthy();
  });

  it('names the export qemu-nbd serves, and says so when the name is unknown', async () => {
    const dir = tempDir();
    const img = join(dir, 'disk.raw');
    writeFileSync(img, Buffer.alloc(5 * 512));
    await startPeer('qemu-nbd', ['-k', join(dir, 'q.sock'), '-x', 'known', '-e', '2', '-f', 'raw', '-t', img], join(dir, 'q.sock'));
    const info = await negotiate(await connect(join(dir, 'q.sock')), 'known');
    expect(info.size).toBe(5 * 512);
    await expect(negotiate(await connect(join(dir, 'q.sock')), 'other')).rejects.toThrow(/no export named 'other'/);
  });

  it("gets dmkit's own exports with their block sizes and multi-conn", async () => {
    const registry = await DeviceRegistry.create({});
    await registry.create('zeros', '0 2048 zero');
    const server = new NbdServer({ exports: registry });
    cleanups.push(async () => { await server.close(); await registry.close(); });
    const [a, b] = await socketPair();
    server.serveSocket(a, 'test');
    const info = await negotiate(b, 'zeros');
    expect(info.size).toBe(2048 * 512);
    expect(info.flags & TFLAG.CAN_MULTI_CONN).toBeTruthy();
    expect(info.blockSize).toEqual({ min: 1, preferred: 4096, max: 32 << 20 });
    b.destroy();
  });

  it('refuses what is not a newstyle NBD server', async () => {
    await expect(negotiate(await scripted((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n')), 'x')).rejects.toThrow(/not an NBD server/);
    const oldstyle = Buffer.alloc(18);
    oldstyle.writeBigUInt64BE(NBDMAGIC, 0);
    oldstyle.writeBigUInt64BE(0x00420281861253n, 8);
    await expect(negotiate(await scripted((s) => s.write(oldstyle)), 'x')).rejects.toThrow(/oldstyle/);
    await expect(negotiate(await scripted((s) => s.end(newstyleGreeting().subarray(0, 10))), 'x'))
      .rejects.toThrow(/closed the connection during the handshake/);
  });

  it('falls back to NBD_OPT_EXPORT_NAME when the server lacks NBD_OPT_GO', async () => {
    const sock = await scripted((s) => {
      s.write(newstyleGreeting());
      let seen = Buffer.alloc(0);
      s.on('data', (d) => {
        seen = Buffer.concat([seen, d]);
        if (seen.length < 4 + 16) return;
        const opt = seen.readUInt32BE(4 + 8);
        const len = seen.readUInt32BE(4 + 12);
        if (seen.length < 4 + 16 + len) return;
        seen = seen.subarray(0, 4); // keep the client flags; drop the option
        if (opt === OPT.GO) {
          const r = Buffer.alloc(20);
          r.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
          r.writeUInt32BE(OPT.GO, 8);
          r.writeUInt32BE(REP.ERR_UNSUP, 12);
          s.write(r);
        } else if (opt === OPT.EXPORT_NAME) {
          const r = Buffer.alloc(10);
          r.writeBigUInt64BE(7n << 20n, 0);
          r.writeUInt16BE(TFLAG.HAS_FLAGS | TFLAG.SEND_FLUSH, 8);
          s.write(r);
        }
      });
    });
    const info = await negotiate(sock, 'legacy');
    expect(info).toEqual({ size: 7 << 20, flags: TFLAG.HAS_FLAGS | TFLAG.SEND_FLUSH, blockSize: null });
  });
});

/** Two connected net.Sockets (through a throwaway Unix listener). */
async function socketPair() {
  const path = join(tempDir(), 'pair.sock');
  const server = net.createServer();
  await new Promise((r) => server.listen(path, r));
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const client = net.connect(path);
  const a = /** @type {net.Socket} */ (await accepted);
  server.close(); // stops listening; its callback would wait for these two to close
  return [a, client];
}
