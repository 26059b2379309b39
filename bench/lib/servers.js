// @ts-check
// NBD servers for benchmarks, each on a private Unix socket in the caller's temp dir: `dmkit
// serve` (this checkout's bin/dmkit.js) and nbdkit as the peer. Both resolve once the server
// accepts connections and stop() waits for the process to exit, so nothing outlives a run.
import { spawn, spawnSync } from 'node:child_process';
import { rmSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DMKIT = join(ROOT, 'bin', 'dmkit.js');
const START_MS = 30_000;

/**
 * Which of the named programs are not on PATH (Debian's /usr/bin first, as the tests do).
 * @param {string[]} programs
 */
export function missingPrograms(programs) {
  return programs.filter((p) => spawnSync('sh', ['-c', `command -v ${p}`], { env: clientEnv() }).status !== 0);
}

/** Environment for client programs: Debian's binaries before anything a toolchain put first. */
export function clientEnv(extra = {}) {
  return { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH}`, ...extra };
}

/**
 * @typedef {object} BenchServer
 * @property {(name?: string) => string} uri nbd+unix URI of an export
 * @property {() => Promise<void>} stop
 * @property {() => string} output what the server printed since it started serving (for error messages)
 * @property {() => number} cpuSeconds CPU time the server used so far, user + system, all threads
 * @property {(name: string) => Promise<string>} [status] dmkit only: `dmkit status NAME`
 */

/**
 * `dmkit serve` with the given devices, quiet, no TCP.
 * @param {string} dir temp dir for the sockets
 * @param {Array<[string, string]>} devices [name, table]
 * @returns {Promise<BenchServer>}
 */
export async function startDmkit(dir, devices) {
  const socket = join(dir, 'dmkit.sock');
  const control = join(dir, 'dmkit-control.sock');
  const args = [DMKIT, 'serve', '--quiet', '--socket', socket, '--control', control];
  for (const [name, table] of devices) args.push('--device', name, table);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  // `control: ...` is the last line serve prints once it listens.
  await waitFor(() => /^control: /m.test(out), exited, () => `dmkit serve did not start:\n${out}`);
  const banner = out.length;
  return {
    uri: (name = '') => `nbd+unix:///${name}?socket=${socket}`,
    stop: () => stopProcess(proc, exited),
    output: () => out.slice(banner),
    cpuSeconds: () => cpuSeconds(/** @type {number} */ (proc.pid)),
    status: async (name) => {
      const r = spawnSync(process.execPath, [DMKIT, 'status', name, '--control', control], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`dmkit status ${name} failed: ${r.stderr}`);
      return r.stdout.trim();
    },
  };
}

/**
 * nbdkit in the foreground (-f) with the given plugin, filters and parameters.
 * @param {string} dir temp dir for the socket (and TMPDIR, where the cow filter keeps its overlay)
 * @param {string[]} args e.g. ['--filter=cow', 'file', 'base.img', 'cow-block-size=4096']
 * @returns {Promise<BenchServer>}
 */
export async function startNbdkit(dir, args) {
  const socket = join(dir, 'nbdkit.sock');
  rmSync(socket, { force: true }); // a previous run's socket would look like a ready server
  const proc = spawn('nbdkit', ['-f', '-U', socket, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'], env: clientEnv({ TMPDIR: dir }),
  });
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  await waitFor(() => probe(socket), exited, () => `nbdkit ${args.join(' ')} did not start:\n${out}`);
  return {
    uri: (name = '') => `nbd+unix:///${name}?socket=${socket}`,
    stop: () => stopProcess(proc, exited),
    output: () => out,
    cpuSeconds: () => cpuSeconds(/** @type {number} */ (proc.pid)),
  };
}

/** CPU seconds (user + system, every thread) process `pid` used so far, from /proc (USER_HZ 100). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Whether a Unix socket accepts a connection (closed again at once). @returns {Promise<boolean>} */
function probe(path) {
  return new Promise((resolve) => {
    const c = net.createConnection(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/**
 * Polls ready() until true; rejects if the process exits first or START_MS pass.
 * @param {() => boolean | Promise<boolean>} ready @param {Promise<unknown>} exited @param {() => string} describe
 */
async function waitFor(ready, exited, describe) {
  let gone = false;
  exited.then(() => { gone = true; });
  const t0 = Date.now();
  while (!(await ready())) {
    if (gone) throw new Error(describe());
    if (Date.now() - t0 > START_MS) throw new Error(describe());
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SIGTERM, then SIGKILL if it is still there after 10 s. */
async function stopProcess(proc, exited) {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
