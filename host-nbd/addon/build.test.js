// @ts-check
// A failed rebuild of the addon must not cost the working one (node-gyp rebuild starts by deleting
// build/), and a missing addon must be reported. Runs scripts/build.js and build.js in a copy of
// the checkout, never touching the real addon (others load it while the tests run).
import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { tempDir } from '../../test/temp-dir.js';
import { findNodeDir, findNodeGyp } from './build.js';

const ROOT = join(import.meta.dirname, '..', '..');
const hasToolchain = process.platform === 'linux' && findNodeGyp() && findNodeDir() &&
  spawnSync('sh', ['-c', 'command -v python3 && command -v make && command -v g++'], { stdio: 'ignore' }).status === 0;

/** A checkout holding what the two scripts read, with an old addon built before its sources. */
function checkout() {
  const root = tempDir('dmkit-addon-build-');
  const addon = join(root, 'host-nbd', 'addon');
  for (const f of ['scripts/build.js', 'asconfig.json', 'host-nbd/addon/build.js', 'host-nbd/addon/binding.gyp']) {
    cpSync(join(ROOT, f), join(root, f));
  }
  cpSync(join(ROOT, 'host-nbd', 'addon', 'src'), join(addon, 'src'), { recursive: true });
  symlinkSync(join(ROOT, 'core-as'), join(root, 'core-as'));
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  // A Wasm core newer than its sources, so scripts/build.js goes straight to the addon.
  mkdirSync(join(root, 'build'));
  writeFileSync(join(root, 'build', 'dmkit-core.wasm'), 'wasm');
  const future = new Date(Date.now() + 3_600_000);
  utimesSync(join(root, 'build', 'dmkit-core.wasm'), future, future);
  const node = join(addon, 'build', 'Release', 'dmkit_nbd.node');
  mkdirSync(join(addon, 'build', 'Release'), { recursive: true });
  const old = randomBytes(4096);
  writeFileSync(node, old);
  const past = new Date(Date.now() - 3_600_000);
  utimesSync(node, past, past);
  const broken = join(addon, 'src', 'addon.cc');
  writeFileSync(broken, `#error deliberately broken\n${readFileSync(broken, 'utf8')}`);
  return { root, addon, node, old, log: join(addon, 'build', 'node-gyp.log') };
}

/** A node-gyp that, like the real one, deletes build/ first, then fails or builds `bytes`. */
function fakeGyp(root, bytes) {
  const gyp = join(root, 'fake-node-gyp.cjs');
  writeFileSync(gyp, `const fs = require('node:fs');
fs.rmSync('build', { recursive: true, force: true });
if (process.env.FAKE_GYP_TOUCH) fs.appendFileSync(process.env.FAKE_GYP_TOUCH, ' ');
${bytes === null ? "console.error('fake.cc:1: error: deliberately broken'); process.exit(2);"
    : `fs.mkdirSync('build/Release', { recursive: true }); fs.writeFileSync('build/Release/dmkit_nbd.node', ${JSON.stringify(bytes)});`}\n`);
  mkdirSync(join(root, 'nodedir', 'include', 'node'), { recursive: true });
  writeFileSync(join(root, 'nodedir', 'include', 'node', 'node_api.h'), '');
  return { ...process.env, npm_config_node_gyp: gyp, npm_config_nodedir: join(root, 'nodedir') };
}

const run = (root, script, args = [], env = process.env) =>
  spawnSync(process.execPath, [join(root, script), ...args], { cwd: root, encoding: 'utf8', env });

describe.skipIf(process.platform !== 'linux')('building the addon', () => {
  it('says why the addon is not loaded: missing, or older than its sources', () => {
    const t = checkout();
    cpSync(join(ROOT, 'host-nbd', 'addon', 'built.js'), join(t.addon, 'built.js'));
    const why = () => run(t.root, 'why.mjs').stdout.trim();
    writeFileSync(join(t.root, 'why.mjs'),
      "import { loadBuiltAddon } from './host-nbd/addon/built.js';\nconsole.log(loadBuiltAddon('tests', 'Receiver').why);\n");
    expect(why()).toBe(`the native addon is older than its sources (${t.node}; rebuild it with \`npm run build:addon\`)`);
    rmSync(t.node);
    expect(why()).toBe(`the native addon is not built (${t.node}; build it with \`npm run build:addon\`)`);
  });

  it('keeps the previous addon when node-gyp fails after deleting build/, and says so', () => {
    const t = checkout();
    const r = run(t.root, 'scripts/build.js', [], fakeGyp(t.root, null));
    expect(r.status).toBe(0);
    expect(readFileSync(t.node)).toEqual(t.old);
    expect(r.stderr).toContain('rebuilding the stale native addon failed: node-gyp failed (exit 2; first error: fake.cc:1: error: deliberately broken)');
    expect(r.stderr).toContain(`see ${t.log}; the previous addon is kept`);
    expect(readFileSync(t.log, 'utf8')).toContain('fake.cc:1: error: deliberately broken');
    expect(r.stderr.trim().split('\n')).toHaveLength(2);
    expect(existsSync(join(t.addon, 'build.lock'))).toBe(false);
    const install = run(t.root, 'host-nbd/addon/build.js', ['--optional'], fakeGyp(t.root, null));
    expect(install.status).toBe(0);
    expect(install.stderr).toContain('the previous addon is kept (stale, so not loaded)');
    expect(run(t.root, 'host-nbd/addon/build.js', [], fakeGyp(t.root, null)).status).toBe(1);
    expect(readFileSync(t.node)).toEqual(t.old);
  });

  it('a failed build run by hand shows node-gyp\'s output as it did, and keeps it in the log its message names', () => {
    const t = checkout();
    const r = run(t.root, 'host-nbd/addon/build.js', [], fakeGyp(t.root, null));
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe('fake.cc:1: error: deliberately broken'); // node-gyp's own, shown first
    expect(lines.slice(1)).toEqual([`dmkit: cannot build the NBD attach addon: node-gyp failed (exit 2; first error: fake.cc:1: error: deliberately broken); see ${t.log}; the previous addon is kept (stale, so not loaded)`]);
    expect(readFileSync(t.log, 'utf8')).toBe('fake.cc:1: error: deliberately broken\n');
    expect(readFileSync(t.node)).toEqual(t.old);
  });

  it('swaps in a successful build, dated before its sources were copied', () => {
    const t = checkout();
    writeFileSync(t.log, 'an earlier failure');
    const r = run(t.root, 'scripts/build.js', [], fakeGyp(t.root, 'new addon'));
    expect(r.stderr).toMatch(/^rebuilt .*dmkit_nbd\.node/);
    expect(readFileSync(t.node, 'utf8')).toBe('new addon');
    expect(existsSync(t.log)).toBe(false);
    expect(existsSync(join(t.addon, 'build.lock'))).toBe(false);
    expect(run(t.root, 'scripts/build.js').stderr).toBe(''); // up to date: no rebuild
    // A source edited during a build was not in it: the addon stays stale and is built again.
    const edit = { ...fakeGyp(t.root, 'newer addon'), FAKE_GYP_TOUCH: join(t.addon, 'src', 'fds.cc') };
    writeFileSync(join(t.addon, 'src', 'addon.cc'), '// edited');
    expect(run(t.root, 'scripts/build.js', [], edit).stderr).toMatch(/^rebuilt/);
    expect(run(t.root, 'scripts/build.js', [], fakeGyp(t.root, 'newest addon')).stderr).toMatch(/^rebuilt/);
    expect(readFileSync(t.node, 'utf8')).toBe('newest addon');
  });

  it('warns on each npm run build while the addon is missing, without failing it', () => {
    const t = checkout();
    rmSync(t.node);
    for (let i = 0; i < 2; i++) {
      const r = run(t.root, 'scripts/build.js', [], fakeGyp(t.root, null));
      expect(r.status).toBe(0);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^dmkit: warning: the native addon is not built; .*`npm run build:addon` builds it$/)]);
    }
    writeFileSync(t.log, 'node-gyp said no');
    const r = run(t.root, 'scripts/build.js', [], fakeGyp(t.root, null));
    expect(r.stderr).toContain(`not built (its last build failed: see ${t.log})`);
    rmSync(join(t.addon, 'build'), { recursive: true }); // never built, but node-gyp is here
    expect(run(t.root, 'scripts/build.js', [], fakeGyp(t.root, null)).stderr).toMatch(/^dmkit: warning: the native addon is not built;/);
  });

  it('takes over a build lock whose owner is gone at once, and leaves a live owner\'s alone', () => {
    const t = checkout();
    const lock = join(t.addon, 'build.lock');
    mkdirSync(lock);
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(join(lock, 'owner'), `${gone}\n`);
    const t0 = Date.now();
    const r = run(t.root, 'host-nbd/addon/build.js', [], fakeGyp(t.root, 'after a killed build'));
    expect(r.status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(20_000); // not the 300 s an ownerless lock waits
    expect(readFileSync(t.node, 'utf8')).toBe('after a killed build');
    // A lock of a live process is waited for, however old: here the test's own, released after 1 s.
    mkdirSync(lock);
    writeFileSync(join(lock, 'owner'), `${process.pid}\n`);
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(lock, old, old);
    const child = spawn(process.execPath, [join(t.root, 'host-nbd/addon/build.js')], { cwd: t.root, env: fakeGyp(t.root, 'after waiting') });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    return new Promise((resolve) => setTimeout(resolve, 1000)).then(async () => {
      expect(readFileSync(t.node, 'utf8')).toBe('after a killed build'); // still waiting
      rmSync(lock, { recursive: true });
      expect(await exited).toBe(0);
      expect(readFileSync(t.node, 'utf8')).toBe('after waiting');
    });
  }, 30_000);

  it.skipIf(!hasToolchain)('keeps the previous addon when the real node-gyp cannot compile a source', () => {
    const t = checkout();
    const r = run(t.root, 'scripts/build.js');
    expect(r.status).toBe(0);
    expect(readFileSync(t.node)).toEqual(t.old);
    expect(r.stderr).toContain(`see ${t.log}; the previous addon is kept`);
    expect(r.stderr).toMatch(/first error: .*addon\.cc:1:.*#error deliberately broken/); // the compiler's own line
    expect(readFileSync(t.log, 'utf8')).toContain('deliberately broken');
    const install = run(t.root, 'host-nbd/addon/build.js', ['--optional']);
    expect(install.status).toBe(0);
    expect(install.stderr).toContain('the previous addon is kept');
    expect(readFileSync(t.node)).toEqual(t.old);
  }, 120_000);
});
