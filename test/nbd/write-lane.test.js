// Large writes from a real client through `dmkit serve` land byte-exact on the image files, on
// each file's own write thread (host-nbd/engine/write-lane.js), seen from outside: the server
// process has a thread named dmkit-write per file written, and none with --pool-writes.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, testBytes, startServer, stopAllServers, ok } from './helpers.js';

const MiB = 1 << 20;
const SIZE = 16 * MiB;

afterAll(stopAllServers);

/** Names of the threads of a process (Linux). @param {number} pid */
function threadNames(pid) {
  return readdirSync(`/proc/${pid}/task`).map((t) => readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim());
}

async function writeThrough(extraArgs) {
  const dir = tempDir();
  const a = join(dir, 'a.img'), b = join(dir, 'b.img'), src = join(dir, 'src.img');
  writeFileSync(a, Buffer.alloc(SIZE));
  writeFileSync(b, Buffer.alloc(SIZE));
  const data = testBytes(2 * SIZE, 11);
  writeFileSync(src, data);
  // Striped over two files: every 256 KiB request is two 128 KiB writes, one per file. On the
  // event loop (--loop-receive): a connection's receive thread would write them itself.
  const server = await startServer(['--loop-receive', '--device', 'disk', `0 ${(2 * SIZE) / 512} striped 2 256 ${a} 0 ${b} 0`, ...extraArgs], { dir });
  await ok('nbdcopy', ['--request-size=262144', src, server.uri('disk')]);
  const threads = threadNames(/** @type {number} */ (server.proc.pid));
  // What the device shows must be what was written (read back through the server).
  await ok('nbdcopy', [server.uri('disk'), join(dir, 'back.img')]);
  const back = readFileSync(join(dir, 'back.img'));
  const stopped = await server.stop();
  return { data, back, a: readFileSync(a), b: readFileSync(b), threads, stopped };
}

/** The stripes of `data` that striped 2 x 128 KiB puts on file `which`. */
function stripesOf(data, which) {
  const chunk = 128 * 1024;
  const out = Buffer.alloc(data.length / 2);
  for (let i = which; i * chunk < data.length; i += 2) data.copy(out, (i >> 1) * chunk, i * chunk, (i + 1) * chunk);
  return out;
}

describe('large writes on a write thread per file (dmkit serve, nbdcopy)', () => {
  it('land byte-exact, on one dmkit-write thread per image file', async () => {
    const r = await writeThrough([]);
    expect(r.stopped.code).toBe(0);
    expect(r.threads.filter((n) => n === 'dmkit-write')).toHaveLength(2);
    expect(r.back.equals(r.data)).toBe(true);
    expect(r.a.equals(stripesOf(r.data, 0))).toBe(true);
    expect(r.b.equals(stripesOf(r.data, 1))).toBe(true);
  }, 60_000);

  it('with --pool-writes, land byte-exact without them', async () => {
    const r = await writeThrough(['--pool-writes']);
    expect(r.stopped.code).toBe(0);
    expect(r.threads).not.toContain('dmkit-write');
    expect(r.back.equals(r.data)).toBe(true);
    expect(r.a.equals(stripesOf(r.data, 0))).toBe(true);
  }, 60_000);
});
