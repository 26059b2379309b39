// @ts-check
// The control socket: dmsetup's verbs as one JSON object per line, answered in kind.
// Only its owner can reach it: the socket sits in a 0700 directory and is itself 0600.
import net from 'node:net';
import { mkdirSync, chmodSync, existsSync, unlinkSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { DmError } from '../../core-as/js/dmcore.js';
import { AttachError } from '../attach/errors.js';

const MAX_LINE = 1 << 20;

/**
 * @param {import('../devices/registry.js').DeviceRegistry} registry
 * @param {string} path
 * @param {(line: string) => void} log
 * @param {Record<string, (req: any) => Promise<string>>} [verbs] more verbs, served after dmsetup's
 * @param {(line: string) => void} [logError] internal failures (bugs), with their stack; kept by
 *   `serve --quiet`, which silences `log`
 */
export async function startControlServer(registry, path, log, verbs = {}, logError = log) {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  checkControlDir(dirname(path));
  if (existsSync(path)) {
    if (!statSync(path).isSocket()) throw new Error(`control socket ${path} exists and is not a socket`);
    if (await isLive(path)) throw new Error(`another dmkit server is using the control socket ${path} (pass --control PATH)`);
    unlinkSync(path);
  }
  const server = net.createServer((sock) => serveClient(registry, sock, log, verbs, logError));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    // The socket is bound (synchronously, in listen) with no access for others from its first
    // moment; the chmod below only makes sure of it.
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => resolve(undefined));
    } finally {
      process.umask(umask);
    }
  });
  chmodSync(path, 0o600);
  return {
    path,
    close: () => new Promise((resolve) => {
      server.close(() => resolve(undefined));
      try { unlinkSync(path); } catch { /* already gone */ }
    }),
  };
}

/**
 * The socket's own 0600 keeps others from connecting, but whoever can write to its directory can
 * swap the socket for theirs, and `dmkit` verbs would then talk to their server. So the directory
 * must be ours (or root's) and writable by nobody else, unless the sticky bit (as on /tmp) stops
 * others from removing or renaming our files.
 * @param {string} dir
 */
export function checkControlDir(dir) {
  const st = statSync(dir);
  if (!st.isDirectory()) throw new Error(`control socket directory ${dir} is not a directory`);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (st.uid !== uid && st.uid !== 0) {
    throw new Error(`control socket directory ${dir} belongs to uid ${st.uid}, not to you (uid ${uid}): ` +
      'its owner could replace the socket; pass --control PATH in a directory of your own');
  }
  const mode = st.mode & 0o7777;
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
    throw new Error(`control socket directory ${dir} is writable by others (mode ${mode.toString(8).padStart(4, '0')}): ` +
      `they could replace the socket; chmod go-w ${dir}, or pass --control PATH in a private directory`);
  }
}

function isLive(path) {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function serveClient(registry, sock, log, verbs, logError) {
  let pending = '';
  // A verb that waits (dmsetup wait) stops waiting when its client goes away.
  const gone = new AbortController();
  sock.setEncoding('utf8');
  sock.on('error', () => {});
  sock.on('close', () => gone.abort());
  sock.on('data', async (chunk) => {
    pending += chunk;
    if (pending.length > MAX_LINE) { sock.destroy(); return; }
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      sock.pause();
      const reply = await handle(registry, line, log, verbs, logError, gone.signal);
      sock.write(JSON.stringify(reply) + '\n');
      sock.resume();
    }
  });
}

/** @param {AbortSignal} gone aborts when the client has gone */
async function handle(registry, line, log, verbs, logError, gone) {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: 'malformed control request (not JSON)' };
  }
  try {
    const output = await run(registry, req, verbs, gone);
    if (['create', 'reload', 'suspend', 'resume', 'remove', 'clear', 'message'].includes(req.cmd)) {
      log(`control: ${req.cmd} ${req.name ?? ''}`.trim());
    }
    return { ok: true, output };
  } catch (e) {
    // code: the errno name for errors from the core (EINVAL, EBUSY...), as dmsetup's ioctls fail
    const code = e instanceof DmError ? e.code : undefined;
    // Anything but a refusal (by the core, or an attach refused in words meant for the user) or a
    // usage error is a bug: its stack goes to the log.
    const refusal = e instanceof DmError || e instanceof AttachError;
    if (!refusal && e instanceof Error && !(e.constructor === Error)) logError(`control: ${req.cmd} failed: ${e.stack}`);
    return { ok: false, error: e instanceof Error ? e.message : String(e), code };
  }
}

/** Runs one verb; returns the text dmsetup would print. @param {AbortSignal} gone */
async function run(registry, req, verbs, gone) {
  const name = typeof req.name === 'string' ? req.name : undefined;
  const need = () => {
    if (!name) throw new Error(`${req.cmd} needs a device name`);
    return name;
  };
  switch (req.cmd) {
    case 'ls': return registry.names().map((n) => `${n}\t(${registry.info(n).sectors} sectors)`).join('\n') || 'No devices found';
    case 'create': await registry.create(need(), String(req.table ?? ''), { cwd: typeof req.cwd === 'string' ? req.cwd : undefined }); return '';
    case 'reload': await registry.reload(need(), String(req.table ?? ''), { cwd: typeof req.cwd === 'string' ? req.cwd : undefined }); return '';
    case 'suspend': await registry.suspend(need()); return '';
    case 'resume': await registry.resume(need()); return '';
    case 'remove': await registry.remove(need()); return '';
    case 'clear': registry.clear(need()); return '';
    case 'table': return perDevice(registry, name, (n) => registry.table(n, !!req.inactive));
    case 'status': return perDevice(registry, name, (n) => registry.status(n));
    case 'info': return perDevice(registry, name, (n) => formatInfo(registry, n), '\n');
    case 'message': return registry.message(need(), req.sector ?? 0, String(req.message ?? ''));
    case 'wait': await registry.waitEvent(need(), Number(req.eventNr ?? 0), gone); return '';
    case 'set-time': registry.setTime(Number(req.ms)); return '';
    // The server may serve fewer exports than devices (--allow-export): it then says which.
    case 'exports': return Object.hasOwn(verbs, 'exports') ? verbs.exports(req) : formatExports(registry, registry.listExports());
    default:
      // Verbs of other parts of the server (attach: {@link ../attach/control-verbs.js}).
      if (Object.hasOwn(verbs, req.cmd)) return verbs[req.cmd](req);
      throw new Error(`unknown control command '${req.cmd}'`);
  }
}

/**
 * `dmkit exports`: one line per export, with its connections and requests.
 * @param {import('../devices/registry.js').DeviceRegistry} registry
 * @param {{name: string, started: number, sentFromFiles: number, writtenByThreads: number, readByThreads: number, readMapped: number, writtenSpliced: number}[]} exportsList
 */
export function formatExports(registry, exportsList) {
  return exportsList
    .map((e) => `${e.name}\t${registry.info(e.name).openCount} connection(s)\t${e.started} request(s)\t${e.sentFromFiles} read(s) sent from files\t${e.writtenByThreads} write(s) and ${e.readByThreads} read(s) by receive threads\t${e.readMapped} of those read(s) sent from mapped images\t${e.writtenSpliced} of those write(s) spliced from the socket\t${e.threadCopies.chunksCopied} chunk(s) copied by receive threads`).join('\n');
}

/**
 * One device: its lines; all devices: each line prefixed "name: ", as dmsetup does (a device
 * without such a table, e.g. no inactive one, gets the bare "name: " line dmsetup prints).
 */
function perDevice(registry, name, fn, separator = '') {
  if (name) return fn(name).replace(/\n$/, '');
  const names = registry.names();
  if (names.length === 0) return 'No devices found';
  if (separator) return names.map(fn).join(separator);
  return names.map((n) => {
    const lines = fn(n).split('\n').filter((l) => l);
    return lines.length ? lines.map((l) => `${n}: ${l}`).join('\n') : `${n}: `;
  }).join('\n');
}

function formatInfo(registry, name) {
  const info = registry.info(name);
  const tables = [info.sectors > 0n ? 'LIVE' : '', info.hasInactive ? 'INACTIVE' : ''].filter(Boolean).join(' & ') || 'None';
  const targets = registry.table(name).split('\n').filter((l) => l).length;
  return [
    `Name:              ${info.name}`,
    `State:             ${info.state}${registry.readOnly ? ' (READ-ONLY)' : ''}`,
    `Tables present:    ${tables}`,
    `Open count:        ${info.openCount}`,
    `Event number:      ${info.eventNr}`,
    `Number of targets: ${targets}`,
    `Size:              ${info.sectors} sectors`,
  ].join('\n') + '\n';
}
