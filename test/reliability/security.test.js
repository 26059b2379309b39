// What dmkit serve lets in: loopback only unless told otherwise, only the allowed exports, a
// control socket only its owner can reach, no client lingering in the handshake (however slowly
// it trickles bytes, TLS handshake included), and no set of clients holding more than the
// server's memory cap.
import { describe, it, expect, beforeAll } from 'vitest';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { DeviceRegistry } from '../../host-nbd/devices/registry.js';
import { NbdServer } from '../../host-nbd/server/server.js';
import { loadTls } from '../../host-nbd/server/tls.js';
import { startServer, tempDir, run, ok, DMKIT, sparseFile } from '../nbd/helpers.js';
import { RawClient } from '../nbd/raw-client.js';
import { makePki } from './lib/pki.js';

const REP = { ACK: 1, SERVER: 2, ERR_UNKNOWN: 0x80000006 };
const READ = 0, WRITE = 1, ENOMEM = 12;

describe('listening', () => {
  it('a non-loopback --listen address is refused unless --allow-remote is given', async () => {
    const r = await run(process.execPath, [DMKIT, 'serve', '--listen', '0.0.0.0:0', '--device', 'z', '0 8 zero'], { env: process.env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0, which is not loopback.*--allow-remote/);
  });

  it('with --allow-remote it serves on that address', async () => {
    const srv = await startServer(['--listen', '0.0.0.0:0', '--allow-remote', '--device', 'z', '0 8 zero'], { socket: false });
    try {
      const port = Number(/nbd:\/\/0\.0\.0\.0:(\d+)\/z/.exec(srv.stdout)?.[1]);
      expect(port).toBeGreaterThan(0);
      expect(await ok('nbdinfo', ['--size', `nbd://127.0.0.1:${port}/z`])).toBe('4096\n');
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

describe('export allow-list', () => {
  it('only the allowed devices are listed and reachable; the rest look like no export at all', async () => {
    const srv = await startServer(['--allow-export', 'b', '--allow-export', 'c',
      '--device', 'a', '0 8 zero', '--device', 'b', '0 16 zero', '--device', 'c', '0 24 zero']);
    try {
      const list = await ok('nbdinfo', ['--list', '--json', `nbd+unix://?socket=${srv.socket}`]);
      expect(JSON.parse(list).exports.map((e) => e['export-name']).sort()).toEqual(['b', 'c']);
      const c = await RawClient.connect(srv.socket);
      await c.handshake();
      expect(await c.go('a')).toBe(REP.ERR_UNKNOWN);
      expect(await c.go('b')).toBe(REP.ACK);
      c.destroy();
      // The default export (empty name) is the first allowed one, not the server's first device.
      expect(await ok('nbdinfo', ['--size', `nbd+unix:///?socket=${srv.socket}`])).toBe(`${16 * 512}\n`);
      // The control socket still sees every device.
      expect((await srv.ctl('ls')).stdout).toMatch(/^a\t/m);
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

describe('control socket', () => {
  it('is a 0600 socket, and another user cannot connect to it', async () => {
    const srv = await startServer(['--device', 'z', '0 8 zero']);
    try {
      const st = statSync(srv.control);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.uid).toBe(process.getuid?.());
      // As root we can be someone else for a moment: nobody gets EACCES.
      if (process.getuid?.() === 0) {
        const probe = `require('net').connect(${JSON.stringify(srv.control)}).on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(0)})`;
        // The socket's folder must be traversable for the check to be about the socket itself.
        execFileSync('chmod', ['0711', srv.dir]);
        const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', probe], { env: process.env });
        expect(r.stdout.trim()).toBe('EACCES');
        const ctl = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, DMKIT, 'ls', '--control', srv.control], { env: process.env });
        expect(ctl.code).not.toBe(0);
        expect(ctl.stderr).toMatch(/permission denied on control socket/);
      }
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

describe('in-process limits', () => {
  let dir, registry;
  beforeAll(async () => {
    dir = tempDir();
    sparseFile(join(dir, 'd.img'), 64 << 20);
    registry = await DeviceRegistry.create();
    await registry.create('disk', `0 ${(64 << 20) / 512} linear ${join(dir, 'd.img')} 0`);
  });

  async function server(opts) {
    const logs = [];
    const srv = new NbdServer({ exports: registry, log: (l) => logs.push(l), onError: (l) => logs.push(l), ...opts });
    const socket = join(dir, `s${Math.random().toString(36).slice(2)}.sock`);
    await srv.listenUnix(socket);
    return { srv, socket, logs };
  }

  it('a client trickling its handshake a byte at a time is cut at the handshake timeout', async () => {
    const { srv, socket, logs } = await server({ limits: { handshakeMs: 400 } });
    try {
      const c = await RawClient.connect(socket);
      await c.read(18);
      const bytes = Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from('IHAVEOPT'), Buffer.from([0, 0, 0, 3, 0, 0, 0, 0])]);
      const t0 = Date.now();
      let i = 0;
      const trickle = setInterval(() => { if (i < bytes.length && !c.ended) c.write(bytes.subarray(i, ++i)); }, 60);
      expect(await c.closed(5000)).toBe(true);
      clearInterval(trickle);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(logs.join('\n')).toMatch(/no transmission phase after 400 ms/);
    } finally {
      await srv.close();
    }
  });

  it('a client that asks for TLS and then stalls the TLS handshake is cut at the same timeout', async () => {
    const pki = makePki(tempDir());
    const { srv, socket, logs } = await server({ limits: { handshakeMs: 400 }, tls: loadTls({ mode: 'require', certificates: pki.certs }) });
    try {
      const c = await RawClient.connect(socket);
      await c.handshake();
      c.option(5);
      expect((await c.optionReply())?.type).toBe(REP.ACK);
      expect(await c.closed(5000)).toBe(true);
      expect(logs.join('\n')).toMatch(/no transmission phase after 400 ms/);
    } finally {
      await srv.close();
    }
  });

  it('a client that asks for TLS and leaves before the TLS handshake is closed at once, not at the timeout', async () => {
    const pki = makePki(tempDir());
    const { srv, socket } = await server({ tls: loadTls({ mode: 'on', certificates: pki.certs }) });
    try {
      for (let i = 0; i < 5; i++) {
        const c = await RawClient.connect(socket);
        await c.handshake();
        c.option(5);
        expect((await c.optionReply())?.type).toBe(REP.ACK);
        c.destroy();
      }
      const t0 = Date.now();
      while (srv.connections.size > 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
      expect(srv.connections.size).toBe(0);
    } finally {
      await srv.close();
    }
  });

  it('a request that stops arriving half-way, or replies left unread, close the connection; slow but moving clients and idle ones stay', async () => {
    const MiB = 1 << 20;
    const { srv, socket, logs } = await server({ limits: { stallMs: 400 } });
    try {
      const open = async () => {
        const c = await RawClient.connect(socket);
        await c.handshake();
        expect(await c.go('disk')).toBe(REP.ACK);
        return c;
      };
      // Announces a 4 MiB write, sends 1000 bytes of it, then nothing.
      const stuck = await open();
      stuck.request(WRITE, 0, 1, 0, 4 * MiB, Buffer.alloc(1000, 1));
      // Asks for 64 MiB of reads and reads none of the replies.
      const deaf = await open();
      deaf.sock.pause();
      for (let i = 0; i < 16; i++) deaf.request(READ, 0, i, i * 4 * MiB, 4 * MiB);
      // Sends a 64 KiB write a piece every 100 ms: 2 s in all, far past stallMs, but moving.
      const slow = await open();
      const payload = Buffer.alloc(64 * 1024, 9);
      slow.request(WRITE, 0, 5, 8 * MiB, payload.length, payload.subarray(0, 3200));
      for (let at = 3200; at < payload.length; at += 3200) {
        await new Promise((r) => setTimeout(r, 100));
        slow.write(payload.subarray(at, at + 3200));
      }
      expect(await slow.simpleReply()).toMatchObject({ error: 0, cookie: 5 });
      // Idle with nothing in flight: fine for as long as it likes.
      const idle = await open();
      expect(await stuck.closed(5000)).toBe(true);
      // The deaf client's socket is paused, so it cannot see the close: the server's log says it.
      const t0 = Date.now();
      while (!/stopped reading replies/.test(logs.join('\n')) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
      deaf.destroy();
      expect(idle.ended).toBe(false);
      idle.request(READ, 0, 9, 8 * MiB, 4096);
      expect((await idle.simpleReply(4096))?.data?.every((x) => x === 9)).toBe(true);
      const log = logs.join('\n');
      expect(log).toMatch(/a request stopped arriving half-way: nothing for 400 ms/);
      expect(log).toMatch(/the client stopped reading replies: none taken for 400 ms/);
      for (const c of [slow, idle]) c.destroy();
      const until = Date.now() + 5000;
      while (srv.memory.held > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(srv.memory.held).toBe(0);
    } finally {
      await srv.close();
    }
  });

  it('all clients together hold at most serverMemory: past it requests get ENOMEM, and it is all given back', async () => {
    const MiB = 1 << 20;
    const { srv, socket } = await server({ limits: { serverMemory: 8 * MiB } });
    try {
      // Two clients announce 4 MiB writes and send half: 8 MiB held, the cap.
      const hogs = [];
      for (let i = 0; i < 2; i++) {
        const c = await RawClient.connect(socket);
        await c.handshake();
        expect(await c.go('disk')).toBe(REP.ACK);
        c.request(WRITE, 0, 1, 0, 4 * MiB, Buffer.alloc(2 * MiB, 1));
        hogs.push(c);
      }
      const until = Date.now() + 5000;
      while (srv.memory.held < 8 * MiB && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(srv.memory.held).toBe(8 * MiB);
      const c = await RawClient.connect(socket);
      await c.handshake();
      expect(await c.go('disk')).toBe(REP.ACK);
      c.request(READ, 0, 7, 0, 4096);
      expect(await c.simpleReply()).toMatchObject({ error: ENOMEM, cookie: 7 });
      for (const h of hogs) h.destroy();
      while (srv.memory.held > 0 && Date.now() < until + 5000) await new Promise((r) => setTimeout(r, 20));
      expect(srv.memory.held).toBe(0);
      c.request(READ, 0, 8, 0, 4096);
      expect(await c.simpleReply(4096)).toMatchObject({ error: 0, cookie: 8 });
      c.destroy();
    } finally {
      await srv.close();
    }
  });
});
