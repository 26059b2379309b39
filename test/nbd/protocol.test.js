// Protocol edge cases driven by libnbd (nbdsh scripts in test/nbd/scripts/): unaligned I/O,
// refusals with the spec's errors, zeroing flags, structured and simple replies, option
// haggling, read-only exports and several connections at once.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tempDir, ok, stopAllServers, sparseFile } from './helpers.js';

const SCRIPTS = join(import.meta.dirname, 'scripts');
const COMMON = readFileSync(join(SCRIPTS, 'common.py'), 'utf8');

/** Runs scripts/<name>.py under nbdsh with SOCKET, EXPORT and EXPORTS defined. */
async function script(srv, name, exportName, exportsList = []) {
  const out = await ok('nbdsh', ['-n',
    '-c', `SOCKET = ${JSON.stringify(srv.socket)}; EXPORT = ${JSON.stringify(exportName)}; EXPORTS = ${JSON.stringify(exportsList)}`,
    '-c', COMMON,
    '-c', readFileSync(join(SCRIPTS, `${name}.py`), 'utf8')]);
  expect(out.trim().split('\n').pop()).toBe('ok');
}

describe('NBD protocol edge cases (nbdsh)', () => {
  let srv;
  beforeAll(async () => {
    const dir = tempDir();
    for (const n of ['a', 'b', 'c', 'd', 'e']) sparseFile(join(dir, `${n}.img`), 64 << 20);
    const dev = (name, file) => ['--device', name, `0 ${(64 << 20) / 512} linear ${join(dir, file)} 0`];
    srv = await startServer([...dev('rmw', 'a.img'), ...dev('bounds', 'b.img'), ...dev('zeroing', 'c.img'),
      ...dev('structured', 'd.img'), ...dev('multi', 'e.img')], { dir });
  });
  afterAll(async () => {
    const r = await srv.stop();
    expect(r.code).toBe(0);
  });

  it('unaligned reads and writes match a byte model; concurrent writes sharing sectors all survive', () => script(srv, 'rmw', 'rmw'));
  it('out-of-range, oversized, badly flagged and zero-length requests get the spec\'s answers', async () => {
    await script(srv, 'bounds', 'bounds');
    // Each refusal is logged as one line naming the request.
    expect(srv.stderr).toMatch(/READ 1024@\d+: EINVAL: READ: 1024 bytes at offset \d+ run past the end/);
    expect(srv.stderr).toMatch(/WRITE 1024@\d+: ENOSPC/);
  });
  it('trim, write-zeroes with NO_HOLE and FAST_ZERO, cache and FUA', () => script(srv, 'zeroing', 'zeroing'));
  it('structured reads use hole chunks for zeroes; DF, block status, and simple replies', () => script(srv, 'structured', 'structured'));
  it('option haggling: list, info, meta contexts, go and abort', () => script(srv, 'negotiation', '', ['rmw', 'bounds', 'zeroing', 'structured', 'multi']));
  it('several connections share one view of the device (multi-conn)', () => script(srv, 'multiconn', 'multi'));
});

describe('a read-only server', () => {
  it('advertises READ_ONLY and answers writing commands with EPERM', async () => {
    const dir = tempDir();
    sparseFile(join(dir, 'ro.img'), 1 << 20);
    const srv = await startServer(['--read-only', '--device', 'ro', `0 2048 linear ${join(dir, 'ro.img')} 0`], { dir });
    try {
      await script(srv, 'readonly', 'ro');
    } finally {
      expect((await srv.stop()).code).toBe(0);
    }
  });
});

afterAll(stopAllServers); // servers a failed test left running
