// Engine.submitFileRead / DeviceExport.readToSink: a large read of a pass-through device is
// handed over as backing-file pieces (for sendfile) instead of being read into core memory,
// only when the core's commands tile its buffer exactly; anything else is read as usual.
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { DeviceRegistry } from '../devices/registry.js';
import { tempDir, testBytes } from '../../test/nbd/helpers.js';

const MiB = 1 << 20;
const S = (bytes) => bytes / 512;
let registry;
afterEach(async () => {
  await registry?.close();
  registry = undefined;
});

/** Two 4 MiB images of known bytes, and a registry. */
async function setup() {
  const dir = tempDir();
  const a = join(dir, 'a'), b = join(dir, 'b');
  const bytesA = testBytes(4 * MiB, 1), bytesB = testBytes(4 * MiB, 2);
  fs.writeFileSync(a, bytesA);
  fs.writeFileSync(b, bytesB);
  registry = await DeviceRegistry.create();
  return { a, b, bytesA, bytesB };
}

/**
 * readToSink with a sink that reads the pieces itself (as sendfile would send them).
 * @returns {Promise<{sunk: boolean, pieces: number[][] | null, data: Buffer}>}
 */
function readVia(exp, offset, length, sinkError = null) {
  return new Promise((resolve, reject) => {
    /** @type {number[][] | null} */
    let got = null;
    let data = Buffer.alloc(0);
    exp.readToSink(offset, length, (pieces, complete) => {
      got = pieces.map((p) => [...p]);
      data = Buffer.concat(pieces.map(([fd, pos, len]) => {
        const b = Buffer.alloc(len);
        fs.readSync(fd, b, 0, len, pos);
        return b;
      }));
      setImmediate(() => complete(sinkError));
    }, (e, ptr, skip, sunk) => {
      if (e) { reject(Object.assign(e, { sunk })); return; }
      if (!sunk) {
        data = Buffer.from(exp.engine.mem().subarray(ptr + skip, ptr + skip + length));
        exp.free(ptr);
      }
      resolve({ sunk, pieces: got, data });
    });
  });
}

describe('reads handed to a sink as file pieces', () => {
  it('linear: one piece of the file at the mapped offset, no bytes through core memory', async () => {
    const { a, bytesA } = await setup();
    await registry.create('d', `0 ${S(2 * MiB)} linear ${a} ${S(MiB)}`);
    const exp = registry.getExport('d');
    expect(exp.canReadToSink(0, MiB, false)).toBe(true);
    const r = await readVia(exp, 256 * 1024, 512 * 1024);
    expect(r.sunk).toBe(true);
    const fd = registry.engine.fileByPath(a).fd;
    expect(r.pieces).toEqual([[fd, MiB + 256 * 1024, 512 * 1024]]);
    expect(r.data.equals(bytesA.subarray(MiB + 256 * 1024, MiB + 768 * 1024))).toBe(true);
    expect(registry.engine.running).toBe(0);
  });

  it('striped: the pieces alternate between the stripes, in payload order', async () => {
    const { a, b, bytesA, bytesB } = await setup();
    await registry.create('d', `0 ${S(4 * MiB)} striped 2 128 ${a} 0 ${b} 0`); // 64 KiB chunks
    const exp = registry.getExport('d');
    const r = await readVia(exp, 0, 256 * 1024);
    expect(r.sunk).toBe(true);
    const fa = registry.engine.fileByPath(a).fd, fb = registry.engine.fileByPath(b).fd;
    const K = 64 * 1024;
    expect(r.pieces).toEqual([[fa, 0, K], [fb, 0, K], [fa, K, K], [fb, K, K]]);
    const want = Buffer.concat([bytesA.subarray(0, K), bytesB.subarray(0, K), bytesA.subarray(K, 2 * K), bytesB.subarray(K, 2 * K)]);
    expect(r.data.equals(want)).toBe(true);
  });

  it('a table with a zero target is not pass-through: read into memory, zeroes included', async () => {
    const { a, bytesA } = await setup();
    await registry.create('d', `0 ${S(MiB)} linear ${a} 0\n${S(MiB)} ${S(MiB)} zero`);
    const exp = registry.getExport('d');
    expect(exp.canReadToSink(0, 2 * MiB, false)).toBe(false);
    // Even when asked: the core fills the zero part itself, so the commands do not tile the buffer.
    const r = await readVia(exp, MiB / 2, MiB);
    expect(r.sunk).toBe(false);
    expect(r.data.equals(Buffer.concat([bytesA.subarray(MiB / 2, MiB), Buffer.alloc(MiB / 2)]))).toBe(true);
  });

  it('devices stacked on devices stay on the memory path; snapshot targets onto files do not', async () => {
    const { a, b } = await setup();
    await registry.create('lower', `0 ${S(4 * MiB)} linear ${a} 0`);
    await registry.create('upper', `0 ${S(4 * MiB)} linear lower 0`);
    await registry.create('origin', `0 ${S(4 * MiB)} snapshot-origin ${b}`);
    await registry.create('snap', `0 ${S(4 * MiB)} snapshot ${b} ${a} N 8`);
    await registry.create('stacked-snap', `0 ${S(4 * MiB)} snapshot lower ${b} N 8`);
    expect(registry.getExport('lower').canReadToSink(0, MiB, false)).toBe(true);
    expect(registry.getExport('upper').canReadToSink(0, MiB, false)).toBe(false);
    expect(registry.getExport('origin').canReadToSink(0, MiB, false)).toBe(true);
    expect(registry.getExport('snap').canReadToSink(0, MiB, false)).toBe(true);
    expect(registry.getExport('stacked-snap').canReadToSink(0, MiB, false)).toBe(false);
  });

  it('structured replies: not where the device is known to read as zeroes (that is a hole)', async () => {
    const dir = tempDir();
    const sparse = join(dir, 's');
    fs.writeFileSync(sparse, '');
    fs.truncateSync(sparse, 4 * MiB);
    registry = await DeviceRegistry.create();
    await registry.create('d', `0 ${S(4 * MiB)} linear ${sparse} 0`);
    const exp = registry.getExport('d');
    expect(exp.canReadToSink(0, MiB, false)).toBe(true);
    expect(exp.canReadToSink(0, MiB, true)).toBe(false);
  });

  it('a sink that fails fails the read with EIO, and the commands stop counting as running', async () => {
    const { a } = await setup();
    await registry.create('d', `0 ${S(4 * MiB)} linear ${a} 0`);
    const exp = registry.getExport('d');
    const err = await readVia(exp, 0, MiB, Object.assign(new Error('send: Broken pipe'), { code: 'EPIPE' })).catch((e) => e);
    expect(err.sunk).toBe(true);
    expect(err.message).toMatch(/read of 1048576 bytes at 0 failed/);
    expect(registry.engine.running).toBe(0);
  });

  it('unaligned ranges are not offered to the sink', async () => {
    const { a } = await setup();
    await registry.create('d', `0 ${S(4 * MiB)} linear ${a} 0`);
    const exp = registry.getExport('d');
    expect(exp.canReadToSink(1, MiB, false)).toBe(false);
    expect(exp.canReadToSink(0, MiB + 1, false)).toBe(false);
  });
});
