// dmkit snapshot inspect / merge: a COW device written by `dmkit serve` is read back offline,
// and merging it folds the snapshot's view back into the origin image.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, readFileSync, openSync, ftruncateSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, nbdsh, dmkit, testBytes, stopAllServers } from './helpers.js';

describe('dmkit snapshot', () => {
  it('inspects the COW device of a served snapshot and merges it into the origin', async () => {
    const dir = tempDir();
    const origin = join(dir, 'origin.img'), cow = join(dir, 'cow.img');
    const before = testBytes(4 << 20, 21);
    writeFileSync(origin, before);
    const fd = openSync(cow, 'w');
    ftruncateSync(fd, 1 << 20);
    closeSync(fd);
    const srv = await startServer([
      '--device', 'base', `0 8192 snapshot-origin ${origin}`,
      '--device', 'snap', `0 8192 snapshot ${origin} ${cow} P 8`,
    ], { dir });
    // Overwrite 3 chunks of 4 KiB through the origin: their old data goes to the COW device.
    await nbdsh(srv.uri('base'), 'h.pwrite(b"\\xee" * 4096, 0); h.pwrite(b"\\xee" * 8192, 65536); h.flush()');
    expect((await srv.stop()).code).toBe(0);

    const inspected = await dmkit(['snapshot', 'inspect', cow, '--json']);
    expect(inspected.code, inspected.stderr).toBe(0);
    const info = JSON.parse(inspected.stdout);
    expect(info).toMatchObject({ chunkSize: 8, valid: true, version: 1 });
    expect(info.exceptions.map((e) => e.old).sort((a, b) => a - b)).toEqual([0, 16, 17]);
    const human = await dmkit(['snapshot', 'inspect', cow]);
    expect(human.stdout).toMatch(/exceptions: {3}3 chunk\(s\) copied/);

    expect(readFileSync(origin).subarray(0, 4096).every((x) => x === 0xee)).toBe(true);
    const merged = await dmkit(['snapshot', 'merge', '--origin', origin, '--cow', cow, '--quiet']);
    expect(merged.code, merged.stderr).toBe(0);
    expect(Buffer.compare(readFileSync(origin), before)).toBe(0);
    const after = JSON.parse((await dmkit(['snapshot', 'inspect', cow, '--json'])).stdout);
    expect(after.exceptions).toEqual([]);
  });
});

afterAll(stopAllServers); // servers a failed test left running
