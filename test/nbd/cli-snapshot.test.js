// dmkit snapshot inspect / merge on files that are not what they should be: each is refused with
// one line naming the file, before anything is written to either file.
import { describe, it, expect, afterAll } from 'vitest';
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { tempDir, dmkit, testBytes, startServer, stopAllServers } from './helpers.js';
import { loadImageLocks } from '../../host-nbd/engine/image-locks.js';

const CHUNK = 8 * 512; // chunk size 8 sectors

/**
 * A persistent COW device written by hand (Linux's layout): header in chunk 0, one metadata area
 * in chunk 1, the copied chunks after it.
 * @param {{old: number, data: Buffer}[]} exceptions
 */
function cowImage(exceptions) {
  const cow = Buffer.alloc(CHUNK * (2 + exceptions.length + 4));
  cow.writeUInt32LE(0x70416e53, 0); // magic
  cow.writeUInt32LE(1, 4); // valid
  cow.writeUInt32LE(1, 8); // version
  cow.writeUInt32LE(8, 12); // chunk size in sectors
  exceptions.forEach((e, i) => {
    cow.writeBigUInt64LE(BigInt(e.old), CHUNK + i * 16);
    cow.writeBigUInt64LE(BigInt(2 + i), CHUNK + i * 16 + 8);
    e.data.copy(cow, (2 + i) * CHUNK);
  });
  return cow;
}

describe('dmkit snapshot on the wrong files', () => {
  it('merge refuses a file whose header is blank (not a snapshot) and writes nothing to it', async () => {
    const dir = tempDir();
    // A filesystem image starts with zeroes too (ext4: its superblock is at 1 KiB).
    const notCow = Buffer.concat([Buffer.alloc(1024), testBytes(64 << 10, 3)]);
    const origin = testBytes(64 << 10, 4);
    writeFileSync(join(dir, 'fs.img'), notCow);
    writeFileSync(join(dir, 'origin.img'), origin);
    const r = await dmkit(['snapshot', 'merge', '--origin', join(dir, 'origin.img'), '--cow', join(dir, 'fs.img')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`dmkit snapshot: ${join(dir, 'fs.img')}: not a snapshot yet: the COW header is blank (a new snapshot would be created on first use)\n`);
    expect(readFileSync(join(dir, 'fs.img')).equals(notCow)).toBe(true);
    expect(readFileSync(join(dir, 'origin.img')).equals(origin)).toBe(true);
  });

  it('merge refuses a COW device with exceptions past the end of the origin, touching neither', async () => {
    const dir = tempDir();
    const cow = cowImage([{ old: 3, data: Buffer.alloc(CHUNK, 0x33) }, { old: 100, data: Buffer.alloc(CHUNK, 0x64) }]);
    const origin = testBytes(16 * CHUNK, 5); // chunks 0-15
    writeFileSync(join(dir, 'cow.img'), cow);
    writeFileSync(join(dir, 'origin.img'), origin);
    const r = await dmkit(['snapshot', 'merge', '--origin', join(dir, 'origin.img'), '--cow', join(dir, 'cow.img')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`dmkit snapshot: ${join(dir, 'cow.img')}: exception for origin chunk 100 lies past the end of ${join(dir, 'origin.img')} (64 KiB, chunks of 4 KiB): is it the snapshot's origin?\n`);
    expect(readFileSync(join(dir, 'cow.img')).equals(cow)).toBe(true);
    expect(readFileSync(join(dir, 'origin.img')).equals(origin)).toBe(true);
    // The same COW device fits an origin of 101 chunks or more; merging it then says what it did.
    writeFileSync(join(dir, 'big.img'), Buffer.alloc(101 * CHUNK));
    const m = await dmkit(['snapshot', 'merge', '--origin', join(dir, 'big.img'), '--cow', join(dir, 'cow.img')]);
    expect(m).toMatchObject({ code: 0, stdout: `merged 2 chunk(s) (8 KiB) of ${join(dir, 'cow.img')} into ${join(dir, 'big.img')}\n` });
    const big = readFileSync(join(dir, 'big.img'));
    expect(big.subarray(3 * CHUNK, 4 * CHUNK).every((x) => x === 0x33)).toBe(true);
    expect(big.subarray(100 * CHUNK, 101 * CHUNK).every((x) => x === 0x64)).toBe(true);
    // Merged: nothing left, and a second run changes nothing.
    const again = await dmkit(['snapshot', 'merge', '--origin', join(dir, 'big.img'), '--cow', join(dir, 'cow.img')]);
    expect(again).toMatchObject({ code: 0, stdout: `nothing to merge: ${join(dir, 'cow.img')} holds no exceptions\n` });
  });

  it('merge refuses the same file as origin and COW device', async () => {
    const dir = tempDir();
    const cow = cowImage([{ old: 1, data: Buffer.alloc(CHUNK, 1) }]);
    writeFileSync(join(dir, 'cow.img'), cow);
    const r = await dmkit(['snapshot', 'merge', '--origin', join(dir, 'cow.img'), '--cow', join(dir, 'cow.img')]);
    expect(r).toMatchObject({ code: 1, stderr: `dmkit snapshot: ${join(dir, 'cow.img')} and ${join(dir, 'cow.img')} are the same file\n` });
    expect(readFileSync(join(dir, 'cow.img')).equals(cow)).toBe(true);
  });

  it('inspect of an invalid snapshot says Invalid, as dmsetup status does, not 0 exceptions', async () => {
    const dir = tempDir();
    const cow = cowImage([{ old: 1, data: Buffer.alloc(CHUNK, 1) }]);
    cow.writeUInt32LE(0, 4); // valid = 0
    writeFileSync(join(dir, 'cow.img'), cow);
    const r = await dmkit(['snapshot', 'inspect', join(dir, 'cow.img')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^valid: {8}no /m);
    expect(r.stdout).toMatch(/^usage: {8}Invalid /m);
    expect(r.stdout).toMatch(/^exceptions: {3}not read /m);
  });

  it("'dmkit snapshot' without a subcommand prints its usage and exits 2, as 'dmkit' alone does", async () => {
    const r = await dmkit(['snapshot']);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^Usage:\n {2}dmkit snapshot inspect/);
    expect((await dmkit(['snapshot', '--help'])).code).toBe(0);
  });

  it('merge of images a running server holds is refused in its own words, without the internal device name', async (ctx) => {
    if (!loadImageLocks().locks) ctx.skip(); // the lock needs the native addon
    const dir = tempDir();
    const cow = cowImage([{ old: 1, data: Buffer.alloc(CHUNK, 1) }]);
    writeFileSync(join(dir, 'cow.img'), cow);
    writeFileSync(join(dir, 'origin.img'), Buffer.alloc(16 * CHUNK));
    const srv = await startServer(['--device', 'o', `0 128 snapshot-origin ${join(dir, 'origin.img')}`], { dir });
    try {
      const r = await dmkit(['snapshot', 'merge', '--origin', join(dir, 'origin.img'), '--cow', join(dir, 'cow.img')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^dmkit snapshot: ${join(dir, 'origin.img')}: in use by another process[^\n]*\n$`));
      expect(readFileSync(join(dir, 'cow.img')).equals(cow)).toBe(true);
    } finally {
      await srv.stop();
    }
  });

  it('inspect errors are one line naming the file', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'folder'));
    execFileSync('mkfifo', [join(dir, 'fifo')]); // opening it to read would wait for a writer
    const bad = cowImage([]);
    bad.write('XXXX', 0);
    writeFileSync(join(dir, 'bad.cow'), bad);
    writeFileSync(join(dir, 'short.cow'), cowImage([]).subarray(0, CHUNK));
    const cases = [
      ['missing.cow', 'no such file'],
      ['folder', 'is a directory'],
      ['fifo', 'not a regular file or block device'],
      ['bad.cow', 'not a dm-snapshot COW device: bad magic 0x58585858 (expected 0x70416e53)'],
      ['short.cow', 'corrupt COW device: metadata area 0 lies past its end'],
    ];
    for (const [file, why] of cases) {
      const r = await dmkit(['snapshot', 'inspect', join(dir, file)]);
      expect(r, file).toMatchObject({ code: 1, stdout: '', stderr: `dmkit snapshot: ${join(dir, file)}: ${why}\n` });
    }
  });
});

afterAll(stopAllServers); // servers a failed test left running
