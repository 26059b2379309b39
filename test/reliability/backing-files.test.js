// Backing files damaged or swapped under a running `dmkit serve`: a file named by a second
// path, replaced (renamed over) or deleted while a table uses it, opened by a second server,
// shortened while served. Each must get a clear error (a refused table, an NBD error) while the
// devices already serving go on, and nothing acknowledged may be lost on their side.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, renameSync, unlinkSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, stopAllServers, tempDir, testBytes, dmkit, nbdsh } from '../nbd/helpers.js';
import { NbdClient } from './lib/nbd-client.js';

const MiB = 1 << 20;
const EIO = 5;
afterAll(stopAllServers);

/** A file of known bytes. */
function image(dir, name, bytes, seed) {
  const path = join(dir, name);
  const data = testBytes(bytes, seed);
  writeFileSync(path, data);
  return { path, data };
}

describe('one file, one name', () => {
  it('a snapshot naming its origin by another path is refused: origin writes would not copy out to it', async () => {
    const dir = tempDir();
    const base = image(dir, 'base.img', 4 * MiB, 1);
    writeFileSync(join(dir, 'cow.img'), Buffer.alloc(MiB));
    const srv = await startServer(['--device', 'base', `0 8192 snapshot-origin ${base.path}`], { dir });
    try {
      // The same file through a path with a detour: a different name to the core.
      const alias = `${dir}/./base.img`;
      const r = await srv.ctl('create', 'snap', '--table', `0 8192 snapshot ${alias} ${join(dir, 'cow.img')} P 8`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/is the file already open as .*base\.img: name it .* in every table/);
      expect((await srv.ctl('ls')).stdout).not.toMatch(/snap/);
      // Named the same way, the snapshot keeps the old data when the origin is written.
      expect((await srv.ctl('create', 'snap', '--table', `0 8192 snapshot ${base.path} ${join(dir, 'cow.img')} P 8`)).code).toBe(0);
      const origin = await NbdClient.connect({ socket: srv.socket, exportName: 'base' });
      await origin.write(0, Buffer.alloc(4096, 0xee));
      await origin.flush();
      const snap = await NbdClient.connect({ socket: srv.socket, exportName: 'snap' });
      expect((await snap.read(0, 4096)).equals(base.data.subarray(0, 4096))).toBe(true);
      await snap.close();
      await origin.close();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it('one table naming a file by two paths is refused with the alias named (not as an unknown device)', async () => {
    const dir = tempDir();
    const d = image(dir, 'd.img', 4 * MiB, 8);
    const srv = await startServer(['--empty'], { dir });
    try {
      const r = await srv.ctl('create', 'two', '--table', `0 1024 linear ${d.path} 0\n1024 1024 linear ${dir}/./d.img 0`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/\/\.\/d\.img is the file already open as .*d\.img: name it/);
      expect((await srv.ctl('create', 'two', '--table', `0 1024 linear ${d.path} 0\n1024 1024 linear ${d.path} 0`)).code).toBe(0);
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it('a file replaced (renamed over) while served: a new table naming it is refused, the old device goes on', async () => {
    const dir = tempDir();
    const d = image(dir, 'd.img', 4 * MiB, 2);
    const srv = await startServer(['--device', 'disk', `0 8192 linear ${d.path} 0`], { dir });
    try {
      const c = await NbdClient.connect({ socket: srv.socket, exportName: 'disk' });
      await c.write(0, Buffer.alloc(4096, 0xaa));
      const other = image(dir, 'new.img', 4 * MiB, 3);
      renameSync(other.path, d.path);
      for (const [verb, name] of [['create', 'second'], ['reload', 'disk']]) {
        const r = await srv.ctl(verb, name, '--table', `0 8192 linear ${d.path} 0`);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/d\.img was replaced by another file while in use/);
      }
      // The device keeps its file, and what it acknowledged is there.
      expect((await c.read(0, 4096)).equals(Buffer.alloc(4096, 0xaa))).toBe(true);
      await c.write(4096, Buffer.alloc(4096, 0xbb));
      await c.flush();
      await c.close();
      // Once no table uses the old file, the name opens the new one.
      expect((await srv.ctl('remove', 'disk')).code).toBe(0);
      expect((await srv.ctl('create', 'disk', '--table', `0 8192 linear ${d.path} 0`)).code).toBe(0);
      const c2 = await NbdClient.connect({ socket: srv.socket, exportName: 'disk' });
      expect((await c2.read(0, 4096)).equals(other.data.subarray(0, 4096))).toBe(true);
      await c2.close();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it('a file deleted while served: a new table naming it is refused instead of writing into the deleted file', async () => {
    const dir = tempDir();
    const d = image(dir, 'd.img', 4 * MiB, 4);
    const srv = await startServer(['--device', 'disk', `0 8192 linear ${d.path} 0`], { dir });
    try {
      unlinkSync(d.path);
      const r = await srv.ctl('create', 'second', '--table', `0 8192 linear ${d.path} 0`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/d\.img was deleted while in use/);
      const c = await NbdClient.connect({ socket: srv.socket, exportName: 'disk' });
      expect((await c.read(0, 4096)).equals(d.data.subarray(0, 4096))).toBe(true);
      await c.close();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

describe('one process per image file', () => {
  it('a second server on the same origin and COW device is refused, the first goes on; a killed holder leaves no lock', async () => {
    const dir = tempDir();
    const base = image(dir, 'base.img', 4 * MiB, 5);
    const cow = join(dir, 'cow.img');
    writeFileSync(cow, Buffer.alloc(MiB));
    const tables = ['--device', 'base', `0 8192 snapshot-origin ${base.path}`, '--device', 'snap', `0 8192 snapshot ${base.path} ${cow} P 8`];
    const first = await startServer(tables, { dir });
    const second = tempDir();
    try {
      const err = await startServer(tables, { dir: second }).then(() => null, (e) => e);
      expect(err?.message).toMatch(/base\.img: in use by another process, which holds a lock on it/);
      // Through the control socket of a server that holds neither: refused too.
      const other = await startServer(['--empty'], { dir: second });
      const r = await other.ctl('create', 'snap', '--table', `0 8192 snapshot ${base.path} ${cow} P 8`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/in use by another process/);
      // The first server's snapshot still keeps what the origin had.
      const origin = await NbdClient.connect({ socket: first.socket, exportName: 'base' });
      await origin.write(0, Buffer.alloc(4096, 0x11));
      await origin.flush();
      const snap = await NbdClient.connect({ socket: first.socket, exportName: 'snap' });
      expect((await snap.read(0, 4096)).equals(base.data.subarray(0, 4096))).toBe(true);
      await snap.close();
      await origin.close();
      // Nor may the offline merge fold the COW device into the origin under the running server.
      const merge = await dmkit(['snapshot', 'merge', '--origin', base.path, '--cow', cow]);
      expect(merge.code).toBe(1);
      expect(merge.stderr).toMatch(/in use by another process/);
      // Killed, the first leaves no lock behind: the files load elsewhere, snapshot intact.
      await first.stop('SIGKILL');
      expect((await other.ctl('create', 'base', '--table', `0 8192 snapshot-origin ${base.path}`)).code).toBe(0);
      expect((await other.ctl('create', 'snap', '--table', `0 8192 snapshot ${base.path} ${cow} P 8`)).code).toBe(0);
      const again = await NbdClient.connect({ socket: other.socket, exportName: 'snap' });
      expect((await again.read(0, 4096)).equals(base.data.subarray(0, 4096))).toBe(true);
      await again.close();
      expect((await other.stop()).code).toBe(0);
    } finally {
      await first.stop();
    }
  });
});

describe('files resized while served', () => {
  it('a table loaded after its image grew is checked against the new size, as Linux checks a grown device', async () => {
    const dir = tempDir();
    const d = image(dir, 'd.img', 4 * MiB, 7);
    const srv = await startServer(['--device', 'disk', `0 8192 linear ${d.path} 0`], { dir });
    try {
      const old = await NbdClient.connect({ socket: srv.socket, exportName: 'disk' });
      truncateSync(d.path, 8 * MiB);
      // Longer than even the grown file: refused with the size the file has now.
      let r = await srv.ctl('reload', 'disk', '--table', `0 32768 linear ${d.path} 0`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/d\.img is too small: the mapping needs sectors 0-32768, the device has 16384/);
      r = await srv.ctl('reload', 'disk', '--table', `0 16384 linear ${d.path} 0`);
      expect(r.stderr).toBe('');
      expect((await srv.ctl('resume', 'disk')).code).toBe(0);
      const said = await nbdsh(`nbd+unix:///disk?socket=${srv.socket}`,
        'h.pwrite(b"\\x5a" * 4096, 6 * 2**20); h.flush(); print(h.get_size(), h.pread(4, 6 * 2**20).hex(), h.pread(4, 8 * 2**20 - 4).hex())');
      expect(said.trim()).toBe(`${8 * MiB} 5a5a5a5a 00000000`);
      // The connection opened before keeps its size and its data.
      expect((await old.read(0, 4096)).equals(d.data.subarray(0, 4096))).toBe(true);
      await old.close();
    } finally {
      await srv.stop();
    }
  });

  it('a table loaded after its image shrank is refused where it no longer fits, and fits where it does', async () => {
    const dir = tempDir();
    const d = image(dir, 'd.img', 4 * MiB, 8);
    const srv = await startServer(['--device', 'disk', `0 8192 linear ${d.path} 0`], { dir });
    try {
      truncateSync(d.path, 2 * MiB);
      let r = await srv.ctl('reload', 'disk', '--table', `0 8192 linear ${d.path} 0`);
      expect(r.stderr).toMatch(/d\.img is too small: the mapping needs sectors 0-8192, the device has 4096/);
      r = await srv.ctl('reload', 'disk', '--table', `0 4096 linear ${d.path} 0`);
      expect(r.stderr).toBe('');
      expect((await srv.ctl('resume', 'disk')).code).toBe(0);
      const c = await NbdClient.connect({ socket: srv.socket, exportName: 'disk' });
      expect(c.size).toBe(2 * MiB);
      expect((await c.read(2 * MiB - 4096, 4096)).equals(d.data.subarray(2 * MiB - 4096, 2 * MiB))).toBe(true);
      await c.close();
    } finally {
      await srv.stop();
    }
  });
});

describe('files shortened while served', () => {
  it('an image truncated under its device: reads past its new end fail with EIO and a log line, not zeroes; the rest goes on', async () => {
    const dir = tempDir();
    const d = image(dir, 'd.img', 4 * MiB, 6);
    const srv = await startServer(['--device', 'disk', `0 8192 linear ${d.path} 0`, '--device', 'z', '0 8192 zero'], { dir });
    try {
      const c = await NbdClient.connect({ socket: srv.socket, exportName: 'disk' });
      await c.write(3 * MiB, Buffer.alloc(4096, 0x33));
      await c.flush();
      truncateSync(d.path, MiB);
      await expect(c.read(3 * MiB, 4096)).rejects.toMatchObject({ errno: EIO });
      await expect(c.read(MiB - 512, 1024)).rejects.toMatchObject({ errno: EIO }); // straddles the new end
      await srv.waitLog(/d\.img: read of \d+ bytes at \d+ runs past the end of the file \(1048576 bytes now, 4194304 expected\): it was shortened while in use/);
      // A client that keeps hitting it does not get a log line per request from the file's side.
      for (let i = 0; i < 30; i++) await expect(c.read(2 * MiB + i * 4096, 4096)).rejects.toMatchObject({ errno: EIO });
      await srv.waitLog(/\[10 I\/O errors on this file so far; from now on one in 1000 is logged\]/);
      expect(srv.stderr.match(/I\/O error on .*d\.img/g)).toHaveLength(10);
      // What is left of the file reads as it was; the connection and another export go on.
      expect((await c.read(0, 4096)).equals(d.data.subarray(0, 4096))).toBe(true);
      const z = await NbdClient.connect({ socket: srv.socket, exportName: 'z' });
      expect((await z.read(0, 4096)).equals(Buffer.alloc(4096))).toBe(true);
      await z.close();
      // A write past the new end grows the file again and is read back.
      await c.write(2 * MiB, Buffer.alloc(4096, 0x22));
      expect((await c.read(2 * MiB, 4096)).equals(Buffer.alloc(4096, 0x22))).toBe(true);
      await c.close();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it('a large read past its new end is not sent from the file (sendfile): EIO, never zeroes as data, and the connection goes on', async () => {
    const dir = tempDir();
    const d = image(dir, 'd.img', 4 * MiB, 9);
    const srv = await startServer(['--device', 'disk', `0 8192 linear ${d.path} 0`], { dir });
    try {
      const c = await NbdClient.connect({ socket: srv.socket, exportName: 'disk' });
      truncateSync(d.path, MiB);
      await expect(c.read(MiB - 4096, 512 * 1024)).rejects.toMatchObject({ errno: EIO });
      await expect(c.read(3 * MiB, 4 * MiB - 3 * MiB)).rejects.toMatchObject({ errno: EIO }); // wholly past it
      await srv.waitLog(/d\.img: read of \d+ bytes at \d+ runs past the end of the file \(1048576 bytes now, 4194304 expected\): it was shortened while in use/);
      expect((await c.read(0, 512 * 1024)).equals(d.data.subarray(0, 512 * 1024))).toBe(true);
      expect(srv.stderr).not.toMatch(/closed: .*sendfile/);
      await c.close();
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });

  it('a COW device truncated under its snapshot: the copied chunks read as EIO, not as zeroes; the origin goes on', async () => {
    const dir = tempDir();
    const base = image(dir, 'base.img', 4 * MiB, 7);
    const cow = join(dir, 'cow.img');
    writeFileSync(cow, Buffer.alloc(MiB));
    const srv = await startServer(['--device', 'base', `0 8192 snapshot-origin ${base.path}`,
      '--device', 'snap', `0 8192 snapshot ${base.path} ${cow} P 8`], { dir });
    try {
      const origin = await NbdClient.connect({ socket: srv.socket, exportName: 'base' });
      await origin.write(0, Buffer.alloc(4096, 0x44)); // chunk 0 copied to COW chunk 2
      await origin.flush();
      truncateSync(cow, 8192); // header and first metadata area only
      const snap = await NbdClient.connect({ socket: srv.socket, exportName: 'snap' });
      await expect(snap.read(0, 4096)).rejects.toMatchObject({ errno: EIO });
      await srv.waitLog(/cow\.img: read of 4096 bytes at 8192 runs past the end of the file/);
      expect((await snap.read(4096, 4096)).equals(base.data.subarray(4096, 8192))).toBe(true); // not copied: from the origin
      expect((await origin.read(0, 4096)).equals(Buffer.alloc(4096, 0x44))).toBe(true);
      await snap.close();
      await origin.close();
    } finally {
      await srv.stop();
    }
  });
});

describe('names that are no image', () => {
  it('a FIFO named in a table of a read-only server is refused, instead of blocking the server in open()', async () => {
    const dir = tempDir();
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const srv = await startServer(['--read-only', '--device', 'z', '0 2048 zero'], { dir });
    try {
      const r = await dmkit(['create', 'f', '--table', `0 2048 linear ${fifo} 0`, '--control', srv.control], { timeout: 10_000 });
      expect(r.stderr).toMatch(/fifo: not a regular file or block device/);
      expect(r.code).toBe(1);
      const z = await NbdClient.connect({ socket: srv.socket, exportName: 'z' });
      expect((await z.read(0, 512)).equals(Buffer.alloc(512))).toBe(true);
      await z.close();
      expect((await srv.stop()).code).toBe(0);
    } finally {
      await srv.stop('SIGKILL'); // a server stuck in open() takes no SIGTERM
    }
  });
});
