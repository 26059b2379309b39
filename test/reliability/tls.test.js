// TLS through NBD_OPT_STARTTLS (host-nbd/server/tls.js), checked with libnbd's own TLS (GnuTLS):
// nbdinfo and nbdcopy over nbds+unix with certificates and with a pre-shared key, client
// certificates with --tls-verify-peer, --tls=require refusing plain clients, --tls=on taking
// both, and the STARTTLS traps: plain bytes sent behind the option, garbage instead of a
// handshake. Our own client (Node's tls) does verified I/O through TLS as well.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { writeFileSync, readFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { startServer, tempDir, run, ok, testBytes } from '../nbd/helpers.js';
import { RawClient } from '../nbd/raw-client.js';
import { makePki } from './lib/pki.js';
import { NbdClient } from './lib/nbd-client.js';
import { View } from './lib/history.js';
import { Workload, rng } from './lib/workload.js';
import { sectorsOf } from './lib/pattern.js';

const MiB = 1 << 20;
const OPT = { STARTTLS: 5, GO: 7, EXPORT_NAME: 1, LIST: 3 };
const REP = { ACK: 1, ERR_TLS_REQD: 0x80000005, ERR_UNSUP: 0x80000001 };

describe('TLS', () => {
  let dir, pki, table;
  const servers = [];
  /** A server with these extra flags on an image of its own, stopped after the suite. */
  async function serve(flags) {
    const own = tempDir('dmkit-tls-srv-');
    const img = join(own, 'disk.img');
    writeFileSync(img, sectorsOf(0, 16 * 2048, 0));
    const srv = await startServer([...flags, '--device', 'disk', `0 ${16 * 2048} linear ${img} 0`], { dir: own });
    servers.push(srv);
    return srv;
  }
  const uri = (srv, query = '') => `nbds+unix:///disk?socket=${srv.socket}${query}`;

  beforeAll(() => {
    dir = tempDir('dmkit-tls-');
    pki = makePki(dir);
    table = `0 ${16 * 2048} zero`;
  });
  afterAll(async () => {
    for (const s of servers) expect((await s.stop()).code).toBe(0);
  });

  it('--tls=require with certificates: nbdinfo and nbdcopy work over TLS, plain clients are refused', async () => {
    const srv = await serve(['--tls=require', '--tls-certificates', pki.certs]);
    const info = await ok('nbdinfo', [uri(srv, `&tls-certificates=${pki.certs}`)]);
    expect(info).toMatch(/newstyle-fixed with TLS/);
    expect(info).toMatch(/export-size: 16777216/);
    // nbdcopy in and out over TLS, byte for byte.
    const src = join(dir, 'src.bin');
    const back = join(dir, 'back.bin');
    writeFileSync(src, testBytes(16 * MiB, 77));
    await ok('nbdcopy', [src, uri(srv, `&tls-certificates=${pki.certs}`)]);
    await ok('nbdcopy', [uri(srv, `&tls-certificates=${pki.certs}`), back]);
    expect(readFileSync(back).equals(readFileSync(src))).toBe(true);
    // Without TLS, libnbd's plain URI is refused (GO gets NBD_REP_ERR_TLS_REQD).
    const plain = await run('nbdinfo', [`nbd+unix:///disk?socket=${srv.socket}`]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/opt_go/);
    expect(srv.stderr).toMatch(/TLS established \(TLSv1\.[23]/);
  });

  it('--tls=require: options before STARTTLS get NBD_REP_ERR_TLS_REQD, EXPORT_NAME is hung up on', async () => {
    const srv = await serve(['--tls=require', '--tls-certificates', pki.certs]);
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    c.option(OPT.LIST);
    expect((await c.optionReply())?.type).toBe(REP.ERR_TLS_REQD);
    expect(await c.go('disk')).toBe(REP.ERR_TLS_REQD);
    c.option(OPT.EXPORT_NAME, Buffer.from('disk'));
    expect(await c.closed()).toBe(true);
  });

  it('STARTTLS followed by plain bytes in the same packet is refused, not carried into TLS', async () => {
    const srv = await serve(['--tls=require', '--tls-certificates', pki.certs]);
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    // STARTTLS and, behind it, a plain GO an attacker in the middle would like to smuggle in.
    const h = Buffer.alloc(16);
    Buffer.from('IHAVEOPT').copy(h);
    h.writeUInt32BE(OPT.STARTTLS, 8);
    const go = Buffer.alloc(16 + 10);
    Buffer.from('IHAVEOPT').copy(go);
    go.writeUInt32BE(OPT.GO, 8);
    go.writeUInt32BE(10, 12);
    go.writeUInt32BE(4, 16);
    go.write('disk', 20);
    c.write(Buffer.concat([h, go]));
    expect(await c.closed()).toBe(true);
    await srv.waitLog(/plain-text data followed NBD_OPT_STARTTLS/);
    // Garbage instead of a TLS handshake: that connection fails, the server goes on.
    const g = await RawClient.connect(srv.socket);
    await g.handshake();
    g.option(OPT.STARTTLS);
    expect((await g.optionReply())?.type).toBe(REP.ACK);
    g.write(Buffer.alloc(300, 0x41));
    expect(await g.closed()).toBe(true);
    await srv.waitLog(/TLS handshake failed/);
    expect(await ok('nbdinfo', ['--size', uri(srv, `&tls-certificates=${pki.certs}`)])).toBe(`${16 * MiB}\n`);
  });

  it('pre-shared keys: the right key connects, a wrong one does not', async () => {
    const srv = await serve(['--tls=require', '--tls-psk', pki.psk]);
    const pskUri = (file) => `nbds+unix://alice@/disk?socket=${srv.socket}&tls-psk-file=${file}`;
    expect(await ok('nbdinfo', [pskUri(pki.psk)])).toMatch(/newstyle-fixed with TLS/);
    const wrong = join(dir, 'wrong.psk');
    writeFileSync(wrong, `alice:${'00'.repeat(32)}\n`);
    expect((await run('nbdinfo', [pskUri(wrong)])).code).not.toBe(0);
  });

  it('--tls-verify-peer: a client certificate signed by the CA is needed', async () => {
    const srv = await serve(['--tls=require', '--tls-certificates', pki.certs, '--tls-verify-peer']);
    expect(await ok('nbdinfo', ['--size', uri(srv, `&tls-certificates=${pki.clientCerts}`)])).toBe(`${16 * MiB}\n`);
    const caOnly = join(dir, 'ca-only');
    mkdirSync(caOnly, { recursive: true });
    copyFileSync(join(pki.certs, 'ca-cert.pem'), join(caOnly, 'ca-cert.pem'));
    expect((await run('nbdinfo', ['--size', uri(srv, `&tls-certificates=${caOnly}`)])).code).not.toBe(0);
  });

  it('--tls=on: plain and TLS clients both served; verified I/O through TLS with Node\'s client', async () => {
    const srv = await serve(['--tls=on', '--tls-certificates', pki.certs]);
    expect(await ok('nbdinfo', [`nbd+unix:///disk?socket=${srv.socket}`])).toMatch(/without TLS/);
    expect(await ok('nbdinfo', [uri(srv, `&tls-certificates=${pki.certs}`)])).toMatch(/with TLS/);
    const ca = readFileSync(join(pki.certs, 'ca-cert.pem'));
    const client = await NbdClient.connect({
      socket: srv.socket, exportName: 'disk',
      startTls: (sock) => new Promise((resolve, reject) => {
        const s = tls.connect({ socket: sock, ca, servername: 'localhost' }, () => resolve(s));
        s.once('error', reject);
      }),
    });
    const view = new View('disk over TLS', 16 * 2048, 0);
    const load = new Workload(client, view, { depth: 8, maxSectors: 256, random: rng(3) }).start();
    await new Promise((r) => setTimeout(r, 1500));
    await load.stop();
    expect(load.mismatches).toEqual([]);
    expect(load.errorReplies).toEqual([]);
    expect(load.stats.reads).toBeGreaterThan(10);
    await client.close();
  });

  it('STARTTLS on a server without TLS: NBD_REP_ERR_UNSUP, and haggling goes on', async () => {
    const srv = await serve([]);
    const c = await RawClient.connect(srv.socket);
    await c.handshake();
    c.option(OPT.STARTTLS);
    const r = await c.optionReply();
    expect(r?.type).toBe(REP.ERR_UNSUP);
    expect(r?.data.toString()).toMatch(/TLS is not enabled/);
    expect(await c.go('disk')).toBe(REP.ACK);
    c.destroy();
  });

  it('--stdio cannot start TLS: with --tls=require such a client gets nothing', async () => {
    const cmd = JSON.stringify([process.execPath, join(import.meta.dirname, '..', '..', 'bin', 'dmkit.js'), 'serve', '--stdio',
      '--tls=require', '--tls-certificates', pki.certs, '--device', 'z', '0 8 zero']);
    const r = await run('nbdsh', ['-c', `h.connect_command(${cmd}); print(h.get_size())`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/requires TLS/);
  });

  it('bad TLS settings stop the server at start with a clear message', async () => {
    const cases = [
      [['--tls=maybe', '--tls-certificates', 'x'], /--tls must be one of off, on, require/],
      [['--tls=require'], /needs credentials/],
      [['--tls-psk', 'x'], /--tls is off/],
      [['--tls=on', '--tls-certificates', join(dir, 'nowhere')], /certificate .*nowhere\/server-cert\.pem does not exist/],
      [['--tls=on', '--tls-certificates', pki.certs, '--tls-psk', pki.psk], /either --tls-certificates or --tls-psk/],
    ];
    for (const [flags, message] of cases) {
      const r = await run(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'dmkit.js'), 'serve', '--socket', join(dir, 'x.sock'), ...flags, '--device', 'disk', table], { env: process.env });
      expect(r.code, flags.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(message);
    }
  });
});
