// @ts-check
// Builds the native addon with node-gyp, never depending on ~/.npmrc: the Node headers directory
// and node-gyp itself are found from the running Node and npm.
//
//   node host-nbd/addon/build.js             build, exit 1 with the reason if it cannot
//   node host-nbd/addon/build.js --optional  the same, but a failure only warns (npm install uses
//                                            this: `dmkit attach` needs the addon, and
//                                            `dmkit serve` uses it for sendfile when built)
//   node host-nbd/addon/build.js --if-stale  build only if missing or older than its sources
// A failed build leaves the previous addon in place, and node-gyp's output in build/node-gyp.log.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, readdirSync, mkdirSync, rmSync, cpSync, renameSync, utimesSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ADDON_DIR = dirname(fileURLToPath(import.meta.url));
export const ADDON_PATH = join(ADDON_DIR, 'build', 'Release', 'dmkit_nbd.node');
/** node-gyp's output from the last build, kept only when it failed. */
export const BUILD_LOG = join(ADDON_DIR, 'build', 'node-gyp.log');

/** node-gyp: the one npm runs scripts with, else the one bundled with npm next to this Node. */
export function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

/** The prefix whose include/node holds this Node's headers (Debian: /usr), if installed. */
export function findNodeDir() {
  const prefixes = [process.env.npm_config_nodedir, join(dirname(process.execPath), '..')];
  for (const p of prefixes) if (p && existsSync(join(p, 'include', 'node', 'node_api.h'))) return p;
  return null;
}

/** True when the built addon is missing or older than one of its sources. */
export function addonIsStale() {
  if (!existsSync(ADDON_PATH)) return true;
  const built = statSync(ADDON_PATH).mtimeMs;
  const sources = ['binding.gyp', ...readdirSync(join(ADDON_DIR, 'src')).map((f) => join('src', f))];
  return sources.some((f) => statSync(join(ADDON_DIR, f)).mtimeMs > built);
}

/**
 * Why there is no addon, for a warning where it could be built: it was built or tried before, or
 * node-gyp is here. Null when it is there, or when this system could not build it anyway.
 * @returns {string | null}
 */
export function missingAddon() {
  if (process.platform !== 'linux' || existsSync(ADDON_PATH)) return null;
  const tried = existsSync(join(ADDON_DIR, 'build'));
  if (!tried && !(existsSync(join(ADDON_DIR, 'binding.gyp')) && findNodeGyp())) return null;
  return existsSync(BUILD_LOG) ? `the native addon is not built (its last build failed: see ${BUILD_LOG})`
    : 'the native addon is not built';
}

/**
 * Builds the addon. Returns null on success, else the reason it could not be built.
 * Builds are serialized across processes (test workers may all find it missing at once): the
 * one holding build.lock builds, the others wait and then find it built.
 * @param {{quiet?: boolean, ifStale?: boolean}} [opts] quiet: show node-gyp's output only in the
 *   reason for a failure, not as it runs (a failed build's output is kept in BUILD_LOG either
 *   way); ifStale: skip the build when it is up to date (checked under the lock)
 * @returns {string | null}
 */
export function buildAddon(opts = {}) {
  if (process.platform !== 'linux') return `the NBD attach addon is Linux-only (this is ${process.platform})`;
  const lock = join(ADDON_DIR, 'build.lock');
  const wait = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'owner'), `${process.pid}\n`);
      break;
    } catch (e) {
      if (/** @type {any} */ (e).code !== 'EEXIST') return `cannot build in ${ADDON_DIR}: ${/** @type {Error} */ (e).message}`;
      if (lockAbandoned(lock)) rmSync(lock, { recursive: true, force: true });
      Atomics.wait(wait, 0, 0, 100);
    }
  }
  try {
    if (opts.ifStale && !addonIsStale()) return null;
    return runNodeGyp(lock, opts);
  } catch (e) {
    return `cannot build in ${ADDON_DIR}: ${/** @type {Error} */ (e).message}`;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Whether build.lock was left by a build that will never remove it: its owner process is gone,
 * or, when the owner is not known (the lock was just made, or by an older dmkit), it is older
 * than any build. A live owner's lock is never taken: the staging build inside it is its own.
 * @param {string} lock
 */
function lockAbandoned(lock) {
  let owner = NaN;
  try { owner = Number.parseInt(readFileSync(join(lock, 'owner'), 'utf8'), 10); } catch { /* not written yet */ }
  if (owner > 0) {
    try { process.kill(owner, 0); return false; } catch (e) { return /** @type {any} */ (e).code === 'ESRCH'; }
  }
  const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
  return since !== undefined && Date.now() - since > 300_000;
}

/**
 * Builds in stage (the lock directory) and only then moves the addon into place: node-gyp rebuild
 * starts by deleting build/, so building in place would lose a working addon to a failed build.
 * @param {string} stage
 * @param {{quiet?: boolean}} opts
 */
function runNodeGyp(stage, opts) {
  const gyp = findNodeGyp();
  if (!gyp) return 'node-gyp not found (it comes with npm; set npm_config_node_gyp to its node-gyp.js)';
  const nodedir = findNodeDir();
  if (!nodedir) {
    return `Node's C headers not found (no include/node/node_api.h under ${join(dirname(process.execPath), '..')}; ` +
      'set npm_config_nodedir to the prefix that has them)';
  }
  // Dated when the sources are copied, so one edited during the build leaves the addon stale.
  const copied = statSync(stage).mtime;
  cpSync(join(ADDON_DIR, 'binding.gyp'), join(stage, 'binding.gyp'));
  cpSync(join(ADDON_DIR, 'src'), join(stage, 'src'), { recursive: true });
  rmSync(BUILD_LOG, { force: true });
  // Captured even when not quiet, so that a failure's output can be kept in BUILD_LOG; echoed
  // once node-gyp ends (a compiler's errors can run long, hence the large buffer).
  const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], {
    cwd: stage,
    encoding: 'utf8',
    stdio: 'pipe',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (!opts.quiet) {
    process.stdout.write(r.stdout ?? '');
    process.stderr.write(r.stderr ?? '');
  }
  const kept = existsSync(ADDON_PATH) ? `; the previous addon is kept${addonIsStale() ? ' (stale, so not loaded)' : ''}` : '';
  if (r.error) return `cannot run node-gyp: ${r.error.message}${kept}`;
  if (r.status !== 0) {
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trimEnd();
    mkdirSync(dirname(BUILD_LOG), { recursive: true });
    writeFileSync(BUILD_LOG, `${output}\n`);
    const why = `node-gyp failed (exit ${r.status}${firstError(output) ?? missingTools()}); see ${BUILD_LOG}${kept}`;
    return opts.quiet ? `${why}\n${output}` : why; // not quiet: the output was just shown
  }
  mkdirSync(dirname(ADDON_PATH), { recursive: true });
  renameSync(join(stage, 'build', 'Release', 'dmkit_nbd.node'), ADDON_PATH);
  utimesSync(ADDON_PATH, copied, copied);
  return null;
}

/** The first error a compiler printed in node-gyp's output, as "; first error: ...", or null. */
function firstError(output) {
  const line = output.split('\n').find((l) => /\berror\b/i.test(l) && !/^gyp (ERR|info|verb)!/.test(l));
  return line ? `; first error: ${line.trim()}` : null;
}

/** The build tools node-gyp needs that are not on PATH, as "; missing: ...", or "". */
function missingTools() {
  const missing = ['python3', 'make', 'g++'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  return missing.length > 0 ? `; missing: ${missing.join(', ')}` : '';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const optional = process.argv.includes('--optional');
  const why = buildAddon({ quiet: optional, ifStale: process.argv.includes('--if-stale') });
  if (why) {
    if (optional) {
      process.stderr.write(`dmkit: the NBD attach addon was not built: ${why.split('\n')[0]}\n` +
        'dmkit: everything but `dmkit attach` works without it; `node host-nbd/addon/build.js` retries.\n');
    } else {
      process.stderr.write(`dmkit: cannot build the NBD attach addon: ${why}\n`);
      process.exitCode = 1;
    }
  }
}
