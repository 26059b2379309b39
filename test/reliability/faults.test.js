// Faults under a running `dmkit serve`, each with verified I/O through a real client: backing
// devices that fail (error and flakey targets underneath), a backing file or a persistent
// snapshot's COW file on a full filesystem (a small tmpfs mounted in a private mount namespace
// of the server), and COW devices that fill
// up (P: the snapshot is invalidated, the origin goes on; PO: snapshot writes fail, reads go on).
// Every failure must reach the client as an NBD error with the right errno, every acknowledged
// write must stay, and the server must keep serving.
import { describe, it, expect } from 'vitest';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startServer, tempDir, DMKIT } from '../nbd/helpers.js';
import { NbdClient } from './lib/nbd-client.js';
import { View } from './lib/history.js';
import { Workload, readAll, rng } from './lib/workload.js';
import { sectorsOf, ZERO_ID } from './lib/pattern.js';
import { control, snapshotStatus } from './lib/control.js';

const MiB = 1 << 20;
const EIO = 5, ENOSPC = 28;
const errnos = (load) => [...new Set(load.errorReplies.map((m) => Number(/errno (\d+)/.exec(m)?.[1])))];

/** Runs a workload for `ms` and stops it. */
async function drive(client, view, ms, opts = {}) {
  const load = new Workload(client, view, { depth: 8, maxSectors: 128, random: rng(opts.seed ?? 1), ...opts }).start();
  await new Promise((r) => setTimeout(r, ms));
  await load.stop();
  expect(load.mismatches).toEqual([]);
  expect(load.stats.lost).toBe(0);
  return load;
}

describe('failing backing devices', () => {
  it('an error segment: EIO for what touches it, the rest verified and intact', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    writeFileSync(img, sectorsOf(0, 8192, 0));
    const srv = await startServer(['--device', 'mixed', `0 8192 linear ${img} 0\n8192 8192 error`], { dir });
    try {
      const c = await NbdClient.connect({ socket: srv.socket, exportName: 'mixed' });
      const view = new View('mixed', 16384, 0);
      const load = await drive(c, view, 1500);
      expect(load.stats.errors).toBeGreaterThan(0);
      expect(errnos(load)).toEqual([EIO]);
      expect(load.stats.writes).toBeGreaterThan(0);
      expect(view.check(await readAll(c, 8192 * 512), 0, 'acked')).toEqual([]);
      await expect(c.read(8192 * 512, 512)).rejects.toMatchObject({ errno: EIO });
      await c.close();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it('flakey underneath, down then up again (test clock): EIO while down, nothing acknowledged lost', async () => {
    const dir = tempDir();
    const img = join(dir, 'd.img');
    writeFileSync(img, sectorsOf(0, 8192, 0));
    const srv = await startServer(['--test-clock', '--device', 'flaky', `0 8192 flakey ${img} 0 1 1`, '--device', 'top', '0 8192 linear flaky 0'], { dir });
    try {
      const c = await NbdClient.connect({ socket: srv.socket, exportName: 'top' });
      const view = new View('top', 8192, 0);
      const up = await drive(c, view, 500, { seed: 2 });
      expect(up.stats.errors).toBe(0);
      await control(srv.control, { cmd: 'set-time', ms: 1000 }); // down
      const down = await drive(c, view, 500, { seed: 3 });
      expect(down.stats.writes + down.stats.reads).toBe(0);
      expect(errnos(down)).toEqual([EIO]);
      await control(srv.control, { cmd: 'set-time', ms: 2000 }); // up again
      const again = await drive(c, view, 500, { seed: 4 });
      expect(again.stats.errors).toBe(0);
      expect(view.check(await readAll(c, 8192 * 512), 0, 'acked')).toEqual([]);
      await c.close();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

/** True when this process may mount a tmpfs in a private mount namespace. */
function canMountTmpfs() {
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /mnt'], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * `dmkit serve` in a mount namespace of its own with a tmpfs of `size` over `mnt` (it sees the
 * rest of the file system as it is), started: its process, its output so far, its exit.
 */
async function serveOverTmpfs(mnt, size, args) {
  const proc = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=${size} tmpfs "$1" && shift && exec "$@"`, 'sh', mnt,
    process.execPath, DMKIT, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = { proc, out: '', exited: new Promise((resolve) => proc.on('exit', (code) => resolve(code))) };
  proc.stdout.on('data', (d) => { srv.out += d; });
  proc.stderr.on('data', (d) => { srv.out += d; });
  const t0 = Date.now();
  while (!/^control: /m.test(srv.out)) {
    if (Date.now() - t0 > 20_000 || proc.exitCode !== null) throw new Error(`server did not start:\n${srv.out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return srv;
}

describe('a backing file on a full filesystem', () => {
  it.runIf(canMountTmpfs())('ENOSPC reaches the client, acknowledged writes stay, reads and rewrites go on', async () => {
    const dir = tempDir();
    const mnt = join(dir, 'full');
    mkdirSync(mnt);
    const socket = join(dir, 'nbd.sock');
    const image = join(mnt, 'big.img');
    // Its 32 MiB sparse image on a 2 MiB tmpfs runs out of room once 2 MiB of it are written.
    const srv = await serveOverTmpfs(mnt, '2m', ['--socket', socket, '--control', join(dir, 'c.sock'), '--image', `${image}=32M`,
      '--device', 'disk', `0 65536 linear ${image} 0`]);
    try {
      const c = await NbdClient.connect({ socket, exportName: 'disk' });
      const view = new View('disk on a full tmpfs', 65536, ZERO_ID);
      const load = await drive(c, view, 2500, { maxSectors: 256, readShare: 0.2 });
      expect(load.stats.errors).toBeGreaterThan(0);
      expect(errnos(load)).toEqual([ENOSPC]);
      expect(view.check(await readAll(c, 32 * MiB), 0, 'acked')).toEqual([]);
      // Rewriting what is already allocated still works on the full filesystem.
      const first = [...view.writes.values()].flat().find((w) => w.acked);
      expect(first).toBeDefined();
      await c.write(first.first * 512, sectorsOf(first.first, 1, 999_999));
      await c.flush();
      await c.close();
      expect(srv.out).toMatch(/ENOSPC/);
    } finally {
      srv.proc.kill('SIGTERM');
      expect(await srv.exited).toBe(0);
    }
  }, 60_000);

  it.runIf(canMountTmpfs())("a persistent snapshot's COW file there: the copies fail, the snapshot goes Invalid, the origin loses nothing", async () => {
    const dir = tempDir();
    const mnt = join(dir, 'full');
    mkdirSync(mnt);
    const socket = join(dir, 'nbd.sock'), ctl = join(dir, 'c.sock');
    const origin = join(dir, 'origin.img'), cow = join(mnt, 'cow.img');
    writeFileSync(origin, sectorsOf(0, 65536, 0));
    // A sparse 16 MiB COW file on a 1 MiB tmpfs: room for about 250 copies, far fewer than lent
    // (the receive threads copy first writes here: host-nbd/engine/thread-copies.js).
    const srv = await serveOverTmpfs(mnt, '1m', ['--socket', socket, '--control', ctl, '--image', `${cow}=16M`,
      '--device', 'base', `0 65536 snapshot-origin ${origin}`, '--device', 'snap', `0 65536 snapshot ${origin} ${cow} P 8`]);
    try {
      const c = await NbdClient.connect({ socket, exportName: 'base' });
      const view = new View('base', 65536, 0);
      const load = await drive(c, view, 2500, { maxSectors: 8, readShare: 0.2 });
      expect(load.stats.errors).toBe(0); // the origin's writes go on past the snapshot's failure
      expect(snapshotStatus(await control(ctl, { cmd: 'status', name: 'snap' })).word).toBe('Invalid');
      expect(view.check(await readAll(c, 65536 * 512), 0, 'acked')).toEqual([]);
      await c.close();
      const exports = spawnSync(process.execPath, [DMKIT, 'exports', '--control', ctl], { encoding: 'utf8' }).stdout;
      expect(Number(/^base\t.*\t(\d+) write\(s\) and \d+ read\(s\) by receive threads\t/m.exec(exports)?.[1])).toBeGreaterThan(0);
      expect(srv.out).toMatch(/device snap: event 1, status now: 0 65536 snapshot Invalid/);
    } finally {
      srv.proc.kill('SIGTERM');
      expect(await srv.exited).toBe(0);
    }
  }, 60_000);
});

describe('a COW device that fills up', () => {
  async function snapshotServer(kind) {
    const dir = tempDir();
    const origin = join(dir, 'origin.img');
    const cow = join(dir, 'cow.img');
    writeFileSync(origin, sectorsOf(0, 16384, 0));
    writeFileSync(cow, Buffer.alloc(MiB)); // 1 MiB: 255 chunks of 4 KiB, far less than the origin
    const srv = await startServer(['--device', 'base', `0 16384 snapshot-origin ${origin}`, '--device', 'snap', `0 16384 snapshot ${origin} ${cow} ${kind} 8`], { dir });
    return srv;
  }

  it('P: origin writes fill it; the snapshot becomes Invalid and fails I/O, the origin loses nothing', async () => {
    const srv = await snapshotServer('P');
    try {
      // dmsetup wait: returns once the snapshot's event number passes 0 (it is 0 now).
      const waiting = srv.ctl('wait', 'snap', '0');
      const other = srv.ctl('wait', 'base', '0');
      const base = await NbdClient.connect({ socket: srv.socket, exportName: 'base' });
      const snap = await NbdClient.connect({ socket: srv.socket, exportName: 'snap' });
      const view = new View('base', 16384, 0);
      const load = await drive(base, view, 2000, { maxSectors: 64 });
      expect(load.stats.errors).toBe(0);
      expect(snapshotStatus(await control(srv.control, { cmd: 'status', name: 'snap' })).word).toBe('Invalid');
      // Said once, when it happened (Linux: "Invalidating snapshot"), and counted as dmsetup does.
      await srv.waitLog(/device snap: event 1, status now: 0 16384 snapshot Invalid/);
      expect(srv.stderr.match(/device snap: event/g)).toHaveLength(1);
      expect(await waiting).toMatchObject({ code: 0, stdout: '' });
      expect((await srv.ctl('wait', 'snap', '0')).code).toBe(0); // passed already: at once
      expect((await srv.ctl('info', 'snap')).stdout).toMatch(/^Event number: {6}1$/m);
      expect((await srv.ctl('info', 'base')).stdout).toMatch(/^Event number: {6}0$/m);
      await expect(snap.read(0, 4096)).rejects.toMatchObject({ errno: EIO });
      expect(view.check(await readAll(base, 16384 * 512), 0, 'acked')).toEqual([]);
      await base.close();
      snap.destroy();
      // The origin raised no event: its waiter is still waiting, until its device goes.
      const raced = await Promise.race([other, new Promise((r) => setTimeout(() => r('still waiting'), 300))]);
      expect(raced).toBe('still waiting');
      expect((await srv.ctl('remove', 'snap')).code).toBe(0);
      expect((await srv.ctl('remove', 'base')).code).toBe(0);
      const gone = await other;
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/base was removed while waiting for an event/);
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it('PO: snapshot writes fill it; they fail from then on, reads and the origin go on', async () => {
    const srv = await snapshotServer('PO');
    try {
      const snap = await NbdClient.connect({ socket: srv.socket, exportName: 'snap' });
      const view = new View('snap', 16384, 0);
      const load = await drive(snap, view, 2000, { maxSectors: 64 });
      expect(load.stats.errors).toBeGreaterThan(0);
      expect(errnos(load)).toEqual([EIO]);
      expect(snapshotStatus(await control(srv.control, { cmd: 'status', name: 'snap' })).word).toBe('Overflow');
      expect(view.check(await readAll(snap, 16384 * 512), 0, 'acked')).toEqual([]);
      const base = await NbdClient.connect({ socket: srv.socket, exportName: 'base' });
      const bview = new View('base', 16384, 0);
      const bload = await drive(base, bview, 500, { seed: 5 });
      expect(bload.stats.errors).toBe(0);
      await base.close();
      await snap.close();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});
