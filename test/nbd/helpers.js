// @ts-check
// Shared by the NBD tests: a real `dmkit serve` child process on a private Unix socket and
// control socket, and the real clients (nbdsh, nbdinfo, nbdcopy, qemu-io) run as processes.
import { spawn, execFile } from 'node:child_process';
import { rmSync, openSync, ftruncateSync, closeSync } from 'node:fs';
import { tempDir as makeTempDir } from '../temp-dir.js';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DMKIT = join(ROOT, 'bin', 'dmkit.js');

/** Debian's python3 first: nbdsh runs `python3 -mnbd`, and python3-libnbd is Debian's. */
export const CLIENT_ENV = { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH}`, LIBNBD_DEBUG: '0' };

/** A temp folder removed after the test file (test/temp-dir.js). */
export function tempDir(prefix = 'dmkit-nbd-') {
  return makeTempDir(prefix);
}

/**
 * Runs a program; resolves with {code, stdout, stderr} (never rejects on a non-zero exit).
 * @param {string} cmd @param {string[]} args @param {{input?: string, env?: NodeJS.ProcessEnv, timeout?: number}} [opts]
 * @returns {Promise<{code: number, stdout: string, stderr: string}>}
 */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, {
      env: opts.env ?? CLIENT_ENV, timeout: opts.timeout ?? 60_000, maxBuffer: 64 << 20, encoding: 'utf8', cwd: opts.cwd,
    }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') { reject(new Error(`${cmd}: ${err.message}\n${stderr}`)); return; }
      resolve({ code: err ? /** @type {number} */ (err.code) : 0, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run, but a non-zero exit is an error carrying stderr. */
export async function ok(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const shown = args.map((a) => (a.length > 200 ? `${a.slice(0, 60)}...` : a)).join(' ');
    throw new Error(`${cmd} ${shown} exited with ${r.code}:\n${r.stderr.split('\n').slice(-25).join('\n')}${r.stdout}`);
  }
  return r.stdout;
}

/** nbdsh -u URI -c SCRIPT (h is connected), or nbdsh -c SCRIPT when uri is null. */
export function nbdsh(uri, script) {
  return ok('nbdsh', uri ? ['-u', uri, '-c', script] : ['-c', script]);
}

/** The dmkit CLI (a dmsetup verb, usually). */
export function dmkit(args, opts = {}) {
  return run(process.execPath, [DMKIT, ...args], { env: process.env, ...opts });
}

/** Servers started and not stopped yet: a failed test must not leave them running. */
const live = new Set();
process.on('exit', () => { for (const p of live) p.kill('SIGKILL'); });

/** Stops every server a test file started and did not stop (for afterAll). */
export async function stopAllServers() {
  await Promise.all([...live].map((p) => new Promise((resolve) => {
    p.once('exit', resolve);
    p.kill('SIGTERM');
  })));
}

/**
 * A `dmkit serve` child on a Unix socket in a fresh temp dir, with its own control socket.
 * @param {string[]} args extra serve arguments (devices, --read-only...)
 * @param {{dir?: string, env?: NodeJS.ProcessEnv, socket?: boolean}} [opts]
 */
export async function startServer(args, opts = {}) {
  const dir = opts.dir ?? tempDir();
  const socket = join(dir, 'nbd.sock');
  const control = join(dir, 'control.sock');
  const fullArgs = [DMKIT, 'serve', ...(opts.socket === false ? [] : ['--socket', socket]), '--control', control, ...args];
  const proc = spawn(process.execPath, fullArgs, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  live.add(proc);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { live.delete(proc); resolve({ code, signal }); }));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dmkit serve did not start:\n${stdout}${stderr}`)), 20_000);
    const check = () => {
      if (/^control: .*\n/m.test(stdout)) { clearTimeout(timer); resolve(undefined); } // the last line it prints
    };
    proc.stdout.on('data', check);
    exited.then(() => { clearTimeout(timer); reject(new Error(`dmkit serve exited at start:\n${stdout}${stderr}`)); });
  });
  const server = {
    proc, dir, socket, control,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    /** nbd+unix URI of an export. */
    uri: (name = '') => `nbd+unix:///${name}?socket=${socket}`,
    /** A dmsetup verb against this server's control socket. */
    ctl: (verb, ...rest) => dmkit([verb, ...rest, '--control', control]),
    /** SIGTERM and wait; resolves with the exit code and the server's stderr. */
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const r = /** @type {{code: number, signal: string}} */ (await exited);
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
      return { ...r, stderr };
    },
    /** Waits until the server's stderr matches. */
    async waitLog(re, ms = 10_000) {
      const t0 = Date.now();
      while (!re.test(stderr)) {
        if (Date.now() - t0 > ms) throw new Error(`no log line matching ${re} in:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  return server;
}

/** Deterministic bytes (not the vector PRNG: just test data). */
export function testBytes(length, seed) {
  const b = Buffer.alloc(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    b[i] = s & 0xff;
  }
  return b;
}

/**
 * Reads an export's bytes in-process (DeviceExport.read), copied out of core memory.
 * @returns {Promise<Buffer>}
 */
export function readExport(exp, offset, length) {
  return new Promise((resolve, reject) => exp.read(offset, length, (e, ptr, skip) => {
    if (e) { reject(e); return; }
    const bytes = Buffer.from(exp.engine.mem().subarray(ptr + skip, ptr + skip + length));
    exp.free(ptr);
    resolve(bytes);
  }));
}

/** A sparse file of `bytes` (created or cut to that size). */
export function sparseFile(path, bytes) {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
}

/**
 * `dmkit exports` counters of one export: requests, and the writes and reads its connections'
 * receive threads did by themselves.
 * @param {{ctl: (verb: string, ...rest: string[]) => Promise<{stdout: string}>}} srv @param {string} name
 */
export async function threadCounters(srv, name) {
  const out = (await srv.ctl('exports')).stdout;
  const line = out.split('\n').find((l) => l.startsWith(`${name}\t`));
  const m = /\t(\d+) request\(s\)\t(\d+) read\(s\) sent from files\t(\d+) write\(s\) and (\d+) read\(s\) by receive threads\t(\d+) of those read\(s\) sent from mapped images\t(\d+) of those write\(s\) spliced from the socket\t(\d+) chunk\(s\) copied by receive threads$/.exec(line ?? '');
  if (!m) throw new Error(`no counters for ${name} in:\n${out}`);
  return { requests: Number(m[1]), sentFromFiles: Number(m[2]), threadWrites: Number(m[3]), threadReads: Number(m[4]), mappedReads: Number(m[5]), splicedWrites: Number(m[6]), threadCopies: Number(m[7]) };
}
