// A file's write thread (write-lane.js, the addon's WriteLane): what it reports is what the file
// holds. Every write lands whole at its position, buffers in order; a failure comes back as the
// errno, also after part of a write went in; close waits for what was pushed; an idle lane keeps
// no process alive.
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { loadWriteLanes } from './write-lane.js';
import { FileBacking } from './file-backing.js';

const KiB = 1024;
const logged = [];
const { lanes, why } = loadWriteLanes((line) => logged.push(line));
const LANE_MODULE = new URL('./write-lane.js', import.meta.url).href;

/** @type {Array<() => void>} */
let cleanup = [];
afterEach(() => {
  for (const c of cleanup.reverse()) c();
  cleanup = [];
});

function tempFile(bytes = 0) {
  const dir = fs.mkdtempSync(join(tmpdir(), 'dmkit-write-lane-'));
  const path = join(dir, 'img');
  fs.writeFileSync(path, Buffer.alloc(bytes));
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path;
}

function openLane(path, flags = 'r+') {
  const fd = fs.openSync(path, flags);
  const lane = /** @type {NonNullable<typeof lanes>} */ (lanes).open(fd, path);
  if (!lane) throw new Error(`no lane: ${logged.join('; ')}`);
  cleanup.push(() => { lane.close(); fs.closeSync(fd); });
  return lane;
}

const write = (lane, buffers, position) => new Promise((resolve) => lane.write(buffers, position, resolve));

describe('write lane', () => {
  it('is available (the addon is built by npm install; without it this path is not tested)', () => {
    expect(why).toBeNull();
  });

  it('puts many concurrent writes, several buffers each, byte-exact where they belong', async () => {
    const SIZE = 8 << 20;
    const path = tempFile(SIZE);
    const lane = openLane(path);
    const model = Buffer.alloc(SIZE);
    const pending = [];
    let seed = 7;
    const rand = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
    for (let i = 0; i < 300; i++) {
      const parts = 1 + rand(4);
      const buffers = Array.from({ length: parts }, () => randomFillSync(Buffer.alloc((1 + rand(96)) * KiB)));
      const length = buffers.reduce((n, b) => n + b.length, 0);
      const position = rand(SIZE - length);
      // Overlapping writes land in push order: the lane is one thread, first in, first out.
      Buffer.concat(buffers).copy(model, position);
      pending.push(write(lane, buffers, position));
    }
    const results = await Promise.all(pending);
    expect(results.every((e) => e === null)).toBe(true);
    expect(fs.readFileSync(path).equals(model)).toBe(true);
  });

  it('reports a failed write as its errno', async () => {
    const path = tempFile(64 * KiB);
    const lane = openLane(path, 'r'); // a read-only descriptor: pwritev fails with EBADF
    const e = /** @type {NodeJS.ErrnoException} */ (await write(lane, [Buffer.alloc(4 * KiB, 1)], 0));
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe('EBADF');
    expect(e.syscall).toBe('pwritev');
    expect(e.message).toContain(path);
  });

  it('reports a write that went in only in part as failed (file size limit)', () => {
    // RLIMIT_FSIZE of 1 KiB: pwritev takes the first KiB, then fails with EFBIG (SIGXFSZ goes
    // to the lane's thread, which blocks every signal).
    const path = tempFile(0);
    const script = `
      import { loadWriteLanes } from '${LANE_MODULE}';
      import fs from 'node:fs';
      const fd = fs.openSync(process.argv[1], 'r+');
      const lane = loadWriteLanes(console.error).lanes.open(fd, process.argv[1]);
      lane.write([Buffer.alloc(3000, 7), Buffer.alloc(3000, 8)], 0, (e) => {
        console.log(e ? e.code : 'ok');
        lane.close();
      });`;
    const r = spawnSync('bash', ['-c', 'ulimit -f 1 && exec "$0" --input-type=module -e "$1" "$2"', process.execPath, script, path], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('EFBIG');
    expect(fs.readFileSync(path).equals(Buffer.alloc(1024, 7))).toBe(true);
  });

  it('close waits for the writes pushed and still reports them, on a later turn', async () => {
    const path = tempFile(0);
    const fd = fs.openSync(path, 'r+');
    cleanup.push(() => fs.closeSync(fd));
    const lane = /** @type {NonNullable<typeof lanes>} */ (lanes).open(fd, path);
    const order = [];
    const done = new Promise((resolve) => {
      lane?.write([Buffer.alloc(1 << 20, 3)], 0, (e) => { order.push(`done ${e}`); resolve(e); });
    });
    lane?.close();
    order.push('closed');
    expect(fs.readFileSync(path).equals(Buffer.alloc(1 << 20, 3))).toBe(true);
    expect(await done).toBeNull();
    expect(order).toEqual(['closed', 'done null']);
  });

  it('an idle lane left open does not keep the process alive', () => {
    const path = tempFile(4 * KiB);
    const script = `
      import { loadWriteLanes } from '${LANE_MODULE}';
      import fs from 'node:fs';
      const fd = fs.openSync(process.argv[1], 'r+');
      const lane = loadWriteLanes(console.error).lanes.open(fd, process.argv[1]);
      lane.write([Buffer.from('written')], 0, (e) => console.log(e ?? 'written'));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, path], { encoding: 'utf8', timeout: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('written');
    expect(fs.readFileSync(path).subarray(0, 7).toString()).toBe('written');
  });
});

describe('file backing with write lanes', () => {
  it('sends large writes to the file\'s lane, small ones not, and a flush after them syncs', async () => {
    const path = tempFile(1 << 20);
    const f = FileBacking.open(path, { writeLanes: lanes });
    cleanup.push(() => f.close());
    const big = randomFillSync(Buffer.alloc(256 * KiB));
    const small = randomFillSync(Buffer.alloc(4 * KiB));
    await new Promise((resolve) => f.write(small, 0, small.length, 0, resolve));
    expect(f.lane).toBeNull();
    const e = await new Promise((resolve) => f.write(big, 0, big.length, 512 * KiB, resolve));
    expect(e).toBeNull();
    expect(f.lane).not.toBeNull();
    expect(f.writesDone).toBe(2);
    const image = fs.readFileSync(path);
    expect(image.subarray(0, small.length).equals(small)).toBe(true);
    expect(image.subarray(512 * KiB, 768 * KiB).equals(big)).toBe(true);
    expect(await new Promise((resolve) => f.flush(resolve))).toBeNull();
    expect(f.durableWrites).toBe(2);
  });

  it('writes a run of adjacent parts as one lane write, each part done', async () => {
    const path = tempFile(1 << 20);
    const f = FileBacking.open(path, { writeLanes: lanes });
    cleanup.push(() => f.close());
    const mem = randomFillSync(Buffer.alloc(768 * KiB));
    const dones = [];
    await new Promise((resolve) => {
      const run = [0, 1, 2].map((i) => ({
        at: i * 256 * KiB, length: 256 * KiB, position: 128 * KiB + i * 256 * KiB,
        done: (/** @type {any} */ e) => { dones.push(e); if (dones.length === 3) resolve(undefined); },
      }));
      f.writeRun(mem, run);
    });
    expect(dones).toEqual([null, null, null]);
    expect(f.lane?.nextId).toBe(2); // one lane write for the three parts
    expect(fs.readFileSync(path).subarray(128 * KiB, 896 * KiB).equals(mem)).toBe(true);
  });

  it('a lane that cannot start leaves the file on the pool, said once', async () => {
    const path = tempFile(1 << 20);
    const said = [];
    const f = FileBacking.open(path, { writeLanes: { open: (fd, p) => { said.push(p); return null; } } });
    cleanup.push(() => f.close());
    const big = randomFillSync(Buffer.alloc(256 * KiB));
    for (let i = 0; i < 2; i++) expect(await new Promise((resolve) => f.write(big, 0, big.length, i * 256 * KiB, resolve))).toBeNull();
    expect(said).toEqual([path]);
    expect(fs.readFileSync(path).subarray(256 * KiB, 512 * KiB).equals(big)).toBe(true);
  });
});
