#!/usr/bin/env node
// Builds what the hosts run: the Wasm core (asc, release target of asconfig.json).
// Skips the compile when the .wasm is newer than every core source, so `npm test` stays quick.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wasm = join(root, 'build', 'dmkit-core.wasm');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

const force = process.argv.includes('--force');
const sourcesTime = Math.max(newestSource(join(root, 'core-as')), statSync(join(root, 'asconfig.json')).mtimeMs);
if (force || !existsSync(wasm) || statSync(wasm).mtimeMs < sourcesTime) {
  const asc = join(root, 'node_modules', '.bin', 'asc');
  execFileSync(asc, ['--config', 'asconfig.json', '--target', 'release'], { cwd: root, stdio: 'inherit' });
  console.error(`built ${wasm} (${statSync(wasm).size} bytes)`);
}
