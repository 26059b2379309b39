// @ts-check
// A disk that fails on demand, for a test: faulty-fs.py (a FUSE passthrough) mounted over a
// folder of the test's temp dir. Files put in `source` show at `mount`; I/O on them through
// `mount` fails with EIO where setFaults says so, and each failed operation is logged.
//
// Volatile ({volatile: true}): the disk also has a write cache that loses power. Writes through
// `mount` reach `source` only when their file is fsynced or fdatasynced (or opened O_DSYNC);
// powerCut(seed) keeps a random half of the cached pages, drops the rest, and fails all I/O from
// then on. Unmount and mount again over the same dir: `source` holds what survived (faulty-fs.py).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'faulty-fs.py');
/** Debian's python3, with python3-fusepy (not a pyenv python3 first on PATH). */
const PYTHON = '/usr/bin/python3';

/** Mounts not unmounted yet: a test that fails midway must not leave them behind. */
const live = new Set();
process.on('exit', () => {
  for (const m of live) {
    spawnSync('umount', ['-l', m.mount], { stdio: 'ignore' });
    m.proc.kill('SIGKILL');
  }
});

/** True while `path` is a mount point (/proc/mounts escapes spaces and such as \0NN). */
function isMounted(path) {
  const escaped = path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === escaped);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @typedef {{read?: [number, number][], write?: [number, number][], fsync?: boolean}} FileFaults
 * @typedef {{
 *   source: string, mount: string,
 *   setFaults: (faults: Record<string, FileFaults>) => void,
 *   failures: () => string[],
 *   powerCut: (seed: number) => PowerCut,
 *   unmount: () => Promise<void>,
 * }} FaultyDisk
 * @typedef {{seed: number, kept: number, dropped: number, files: Record<string, [number, number]>}} PowerCut
 *   pages written to `source` and pages lost, in all and per file ([kept, dropped])
 */

/**
 * Mounts a faulty disk at dir/mnt over dir/source (both created) and waits until it is mounted.
 * Fails with a clear error, never skips, where FUSE is missing.
 * @param {string} dir @param {{volatile?: boolean}} [opts] volatile: with a write cache (above)
 * @returns {Promise<FaultyDisk>}
 */
export async function mountFaultyDisk(dir, opts = {}) {
  if (!existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: these tests need FUSE (a container needs --device /dev/fuse)');
  for (const [what, path] of [['python3-fusepy', '/usr/lib/python3/dist-packages/fusepy.py'], ['fuse3', '/usr/bin/fusermount3']]) {
    if (!existsSync(path)) throw new Error(`${path} is missing: install the Debian package ${what} (scripts/ensure-test-deps.sh)`);
  }
  const source = join(dir, 'source'), mount = join(dir, 'mnt');
  mkdirSync(source, { recursive: true });
  mkdirSync(mount, { recursive: true });
  const proc = spawn(PYTHON, [SCRIPT, ...(opts.volatile ? ['--volatile'] : []), source, mount], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { output += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const disk = { mount, proc };
  live.add(disk);

  const t0 = Date.now();
  while (!isMounted(mount)) {
    if (proc.exitCode !== null || proc.signalCode !== null || Date.now() - t0 > 10_000) {
      const why = proc.exitCode !== null || proc.signalCode !== null ? `exited (${proc.exitCode ?? proc.signalCode})` : 'did not mount it within 10 s';
      proc.kill('SIGKILL');
      live.delete(disk);
      throw new Error(`faulty-fs.py ${source} ${mount} ${why}:\n${output}`);
    }
    await sleep(20);
  }

  const faultsPath = join(source, '.faults.json'), logPath = join(source, '.faults.log');
  const cutLogPath = join(source, '.powercut.log');
  return {
    source, mount,
    setFaults(faults) {
      // Whole, then renamed into place: the file system never reads half of it.
      writeFileSync(`${faultsPath}.tmp`, JSON.stringify(faults));
      renameSync(`${faultsPath}.tmp`, faultsPath);
    },
    failures() {
      return existsSync(logPath) ? readFileSync(logPath, 'utf8').split('\n').filter(Boolean) : [];
    },
    powerCut(seed) {
      if (!opts.volatile) throw new Error('powerCut: the disk was not mounted volatile');
      if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`powerCut: a seed must be a non-negative integer, not ${seed}`);
      // The lookup of the magic name cuts the power (synchronously, in the FUSE process) and
      // answers a fake file whose size encodes what was kept and dropped.
      const st = statSync(join(mount, `.powercut-${seed}`), { bigint: true });
      const kept = Number(st.size >> 32n), dropped = Number(st.size & 0xffffffffn);
      const last = readFileSync(cutLogPath, 'utf8').trim().split('\n').pop() ?? '';
      const cut = JSON.parse(last);
      if (cut.seed !== seed || cut.kept !== kept || cut.dropped !== dropped) throw new Error(`powerCut: the log says ${last}, the stat ${kept} kept, ${dropped} dropped`);
      return cut;
    },
    async unmount() {
      if (!live.has(disk)) return;
      live.delete(disk);
      if (isMounted(mount)) {
        // A clean unmount, or a lazy one where something still has a file open.
        const r = spawnSync('fusermount3', ['-u', mount], { encoding: 'utf8' });
        if (r.status !== 0 && isMounted(mount)) spawnSync('umount', ['-l', mount], { stdio: 'ignore' });
      }
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      if (isMounted(mount)) throw new Error(`${mount} is still mounted:\n${output}`);
    },
  };
}

/** Unmounts every faulty disk still mounted (for afterAll/afterEach). */
export async function unmountAllFaultyDisks() {
  await Promise.all([...live].map(async (d) => {
    live.delete(d);
    spawnSync('umount', ['-l', d.mount], { stdio: 'ignore' });
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      const gone = new Promise((r) => d.proc.once('exit', r));
      const timer = setTimeout(() => d.proc.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
  }));
}
