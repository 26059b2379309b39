#!/usr/bin/env node
// Builds what the hosts run: the Wasm core (asc, release target of asconfig.json), and the native
// addon again when it was built before and its sources have changed since (whether to build it at
// all is `npm install`'s choice). Skips both when up to date, so `npm test` stays quick.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_PATH, addonIsStale, buildAddon, missingAddon } from '../host-nbd/addon/build.js';

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

// A stale or missing addon is not loaded, so the tests of its paths would skip without saying why.
const missing = missingAddon();
if (missing) {
  console.error(`dmkit: warning: ${missing}; its tests skip and \`dmkit serve\` runs without it until ` +
    '`npm run build:addon` builds it');
} else if (existsSync(ADDON_PATH) && addonIsStale()) {
  const why = buildAddon({ ifStale: true, quiet: true });
  if (why) {
    console.error(`dmkit: warning: rebuilding the stale native addon failed: ${why.split('\n')[0]}\n` +
      'dmkit: warning: the addon\'s tests skip until `npm run build:addon` succeeds');
  } else console.error(`rebuilt ${ADDON_PATH} (its sources had changed)`);
}
