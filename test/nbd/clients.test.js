// The server as other people's NBD clients see it: libnbd's nbdinfo (--list, --can, --map),
// nbdcopy bulk copies, and qemu's block layer (qemu-io, qemu-img) as an independent client.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, ok, run, nbdsh, testBytes, stopAllServers, sparseFile } from './helpers.js';

const MiB = 1 << 20;

/** nbdinfo --map output as [{offset, length, type, description}] */
function parseMap(text) {
  return text.trim().split('\n').map((l) => {
    const [offset, length, type, ...desc] = l.trim().split(/\s+/);
    return { offset: Number(offset), length: Number(length), type: Number(type), description: desc.join(' ') };
  });
}

describe('real NBD clients against dmkit serve', () => {
  let srv, dir, img, a, b;

  beforeAll(async () => {
    dir = tempDir();
    img = join(dir, 'disk.img');
    a = join(dir, 'a.img');
    b = join(dir, 'b.img');
    sparseFile(img, 64 * MiB);
    srv = await startServer([
      '--image', `${a}=2M`, '--image', `${b}=2M`,
      '--device', 'disk', `0 ${(64 * MiB) / 512} linear ${img} 0`,
      '--device', 'zeros', '0 8192 zero',
      '--device', 'stripes', `0 8192 striped 2 16 ${a} 0 ${b} 0`,
    ], { dir });
  });

  afterAll(async () => {
    const r = await srv.stop();
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/flushed and closed/);
  });

  it('nbdinfo --list shows every export with its size and description', async () => {
    const out = await ok('nbdinfo', ['--list', '--json', srv.uri()]);
    const exportsList = JSON.parse(out).exports;
    const byName = Object.fromEntries(exportsList.map((e) => [e['export-name'], e]));
    expect(Object.keys(byName).sort()).toEqual(['disk', 'stripes', 'zeros']);
    expect(byName.disk['export-size']).toBe(64 * MiB);
    expect(byName.zeros['export-size']).toBe(8192 * 512);
    expect(byName.disk.description).toBe('dmkit mapped device disk');
    expect(byName.disk.contexts).toContain('base:allocation');
    expect(byName.disk['block_size_maximum']).toBe(32 * MiB);
  });

  it('nbdinfo --can reports what the export advertises', async () => {
    for (const what of ['connect', 'read', 'write', 'flush', 'fua', 'trim', 'zero', 'fast-zero', 'cache', 'df', 'multi-conn', 'structured-reply']) {
      const r = await run('nbdinfo', ['--can', what, srv.uri('disk')]);
      expect(r.code, `--can ${what}: ${r.stderr}`).toBe(0);
    }
    expect((await run('nbdinfo', ['--is', 'read-only', srv.uri('disk')])).code).not.toBe(0);
    expect((await run('nbdinfo', ['--is', 'rotational', srv.uri('disk')])).code).not.toBe(0);
  });

  it('the empty export name selects the first device', async () => {
    const out = await ok('nbdinfo', ['--json', srv.uri('')]);
    const info = JSON.parse(out).exports[0];
    expect(info['export-name']).toBe('disk');
    expect(info['export-size']).toBe(64 * MiB);
  });

  it('nbdinfo --map: never-written parts of a sparse image are holes reading as zeroes', async () => {
    await nbdsh(srv.uri('disk'), `h.pwrite(b"\\x01" * ${MiB}, ${4 * MiB}); h.flush()`);
    const map = parseMap(await ok('nbdinfo', ['--map', srv.uri('disk')]));
    const at = (off) => map.find((e) => e.offset <= off && off < e.offset + e.length);
    expect(at(0).description).toBe('hole,zero');
    expect(at(4 * MiB).description).toBe('data');
    expect(at(4 * MiB).type).toBe(0);
    expect(at(6 * MiB).description).toBe('hole,zero');
    expect(map.reduce((n, e) => n + e.length, 0)).toBe(64 * MiB);
  });

  it('nbdinfo --map: a zero target is one hole; stripes follow their chunks', async () => {
    expect(parseMap(await ok('nbdinfo', ['--map', srv.uri('zeros')]))).toEqual([
      { offset: 0, length: 8192 * 512, type: 3, description: 'hole,zero' },
    ]);
    // Writing the first chunk (8 KiB, stripe a) leaves the second chunk (stripe b) a hole.
    await nbdsh(srv.uri('stripes'), 'h.pwrite(b"\\x02" * 8192, 0)');
    const map = parseMap(await ok('nbdinfo', ['--map', srv.uri('stripes')]));
    expect(map[0]).toMatchObject({ offset: 0, description: 'data' });
    // a's first MiB granule is written now: stripe chunks on a are data, chunks on b are holes.
    const onB = map.find((e) => e.offset <= 8192 && 8192 < e.offset + e.length);
    expect(onB.description).toBe('hole,zero');
  });

  it('nbdcopy copies 24 MiB in and back out over several connections, byte for byte', async () => {
    const src = join(dir, 'src.bin');
    const back = join(dir, 'back.bin');
    const data = testBytes(24 * MiB, 7);
    writeFileSync(src, data);
    await ok('nbdcopy', ['--connections=4', '--requests=16', '--flush', src, srv.uri('disk')]);
    await ok('nbdcopy', ['--connections=4', srv.uri('disk'), back]);
    const got = readFileSync(back);
    expect(got.length).toBe(64 * MiB);
    expect(Buffer.compare(got.subarray(0, 24 * MiB), data)).toBe(0);
    expect(got.subarray(24 * MiB).every((x) => x === 0)).toBe(true);
    // The bytes reached the image file itself (written through the linear target).
    expect(Buffer.compare(readFileSync(img).subarray(0, 24 * MiB), data)).toBe(0);
  });

  it('qemu-io writes and reads patterns at unaligned offsets', async () => {
    const out = await ok('qemu-io', ['-f', 'raw', srv.uri('disk'),
      '-c', 'write -P 0x5a 30000001 70001',
      '-c', 'read -P 0x5a 30000001 70001',
      '-c', 'write -z 30000100 1000',
      '-c', 'read -P 0 30000100 1000',
      '-c', 'read -P 0x5a 30000001 99',
      '-c', 'flush']);
    expect(out).not.toMatch(/Pattern verification failed|error|failed/i);
    const file = readFileSync(img);
    expect(file[30000000]).not.toBe(0x5a);
    expect(file[30000001]).toBe(0x5a);
    expect(file[30000100]).toBe(0);
    expect(file[30000001 + 70000]).toBe(0x5a);
  });

  it('qemu-img reads the export as the same bytes as the image file', async () => {
    const copy = join(dir, 'copy.raw');
    await ok('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', srv.uri('disk'), copy]);
    expect(Buffer.compare(readFileSync(copy), readFileSync(img))).toBe(0);
    const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', srv.uri('disk'), img]);
    expect(r.stdout).toMatch(/Images are identical/);
  });
});

afterAll(stopAllServers); // servers a failed test left running
