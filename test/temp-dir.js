// @ts-check
// Temp folders for tests, removed after each test file under vitest (its workers are not let
// exit on their own) and at exit elsewhere (the fuzzer), so a run leaves /tmp as it found it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tempDirs = /** @type {string[]} */ ([]);
const removeTempDirs = () => { for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true }); };
process.on('exit', removeTempDirs);
if (process.env.VITEST) {
  // Registered as the test file is collected, so it runs after the file's own afterAll hooks
  // (which stop its servers and close its registries).
  const { afterAll } = await import('vitest');
  afterAll(removeTempDirs);
}

/** A new folder under the system's temp folder, named `prefix` and a random suffix. */
export function tempDir(prefix = 'dmkit-test-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
