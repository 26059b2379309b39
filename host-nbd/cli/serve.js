// @ts-check
// dmkit serve: mapped devices from a config file and/or the command line, each served as an
// NBD export, with a control socket for dmsetup-style changes while serving.
import { mkdirSync, fstatSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import net from 'node:net';
import { parseArgs, UsageError } from './args.js';
import { DeviceRegistry } from '../devices/registry.js';
import { readConfig } from '../devices/config.js';
import { parseSize, formatSize } from '../devices/sizes.js';
import { defaultDataDir, defaultSetup } from '../devices/defaults.js';
import { startControlServer, formatExports } from '../control/server.js';
import { defaultControlPath } from '../control/paths.js';
import { NbdServer } from '../server/server.js';
import { loadFileSender, DEFAULT_SENDFILE_MIN } from '../server/file-sender.js';
import { loadWriteLanes } from '../engine/write-lane.js';
import { loadReceiveThreads } from '../server/receive-threads.js';
import { SECURITY_SPEC, SECURITY_HELP, securityOf } from './security.js';
import { readPskFile } from '../server/tls.js';
import { createAttacher, parseAttachSpec, attachAtStart } from '../attach/serve-hooks.js';

export const SERVE_HELP = `Usage: dmkit serve [options]

Serve mapped devices as NBD exports (the export name is the device name).

Devices:
  --device NAME TABLE   create device NAME with TABLE (dmsetup syntax; several lines allowed).
                        Repeatable; later devices may stack on earlier ones.
  --config FILE         read images and devices from FILE ('image PATH SIZE', 'device NAME'
                        followed by its table lines)
  --image PATH=SIZE     create a sparse image file of SIZE (e.g. 64M, 1G) if it does not exist
  --read-only           refuse writes on every export
  --data DIR            folder of the embedded default (default: $DMKIT_DATA, else
                        $XDG_DATA_HOME/dmkit or ~/.local/share/dmkit)
  With no device at all, serves the embedded default, created in the data folder on first start
  and reused after: a sparse 1 GiB image served as 'disk' (snapshot-origin) and a persistent
  snapshot of it, 'disk-snap' (COW device: a sparse 256 MiB image).

Listening (default: TCP 127.0.0.1:10809):
  --listen HOST:PORT    TCP address; only loopback unless --allow-remote is given
  --allow-remote        allow --listen on a non-loopback address
  --socket PATH         Unix socket (no TCP unless --listen is given as well)
  --stdio               serve one NBD connection on standard input/output, then exit
  Systemd socket activation (LISTEN_FDS/LISTEN_PID) is used when present.

${SECURITY_HELP}
Kernel block devices (Linux, as root, with the nbd module):
  --attach NAME[=/dev/nbdN]  once serving, attach export NAME as a kernel block device (the
                        first free /dev/nbdN unless given; repeatable). Stopping the server
                        flushes and detaches it. See dmkit attach --help.

Control:
  --control PATH        control socket for dmkit ls/create/reload/... (default: $DMKIT_CONTROL or
                        ${defaultControlPath()}; with --stdio or socket activation: none unless given)
  --quiet               log errors only
  --test-clock          time-driven targets (flakey, delay) see a virtual clock: it starts at 0 and
                        moves with 'dmkit set-time MS', or jumps to the next deadline when I/O
                        waits for nothing but time (deterministic tests)
  --empty               start with no device at all (create them with dmkit create)

Tuning:
  --sync-io-max BYTES   file reads and writes up to this size run on the event loop (cheapest
                        against the page cache); larger ones in libuv's thread pool, beside it.
                        0: all in the thread pool (default 65536)
  --sendfile-min BYTES  reads at least this large, of devices whose targets pass the data through
                        unchanged (linear, striped onto files), go from the files straight to the
                        client's socket (sendfile; plain TCP and Unix sockets, needs the native
                        addon). 0: every read passes through memory (default 131072)
  --pool-writes         writes larger than --sync-io-max go to libuv's thread pool. By default
                        each image file has a write thread of its own for them (needs the native
                        addon; without it they go to the pool)
  --loop-receive        read every request on the event loop. By default a plain TCP or Unix
                        socket connection (and each of dmkit attach's) has a thread that reads
                        its requests and does their plain reads and writes (no flags, whole
                        sectors) to linear and striped targets over image files itself (needs
                        the native addon)
  -h, --help            this help

Example:
  truncate -s 64M /tmp/d.img && dmkit serve --socket /tmp/s.sock --device disk '0 131072 linear /tmp/d.img 0'
`;

const SPEC = /** @type {const} */ ({
  ...SECURITY_SPEC,
  device: { type: 'pairs' }, config: { type: 'string' }, image: { type: 'list' }, 'read-only': { type: 'boolean' },
  data: { type: 'string' }, listen: { type: 'string' }, 'allow-remote': { type: 'boolean' }, socket: { type: 'string' },
  stdio: { type: 'boolean' }, control: { type: 'string' }, quiet: { type: 'boolean' }, 'test-clock': { type: 'boolean' },
  empty: { type: 'boolean' }, 'sync-io-max': { type: 'string' }, 'sendfile-min': { type: 'string' },
  'pool-writes': { type: 'boolean' }, 'loop-receive': { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, attach: { type: 'list' },
});

/** @param {string[]} argv */
export async function serve(argv) {
  const { options, positional } = parseArgs(argv, /** @type {any} */ (SPEC));
  if (options.help) { process.stdout.write(SERVE_HELP); return; }
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}' (devices are given as --device NAME TABLE)`);
  const stdio = !!options.stdio;
  const activated = systemdActivated();
  // With --stdio, stdout is the NBD stream; when a client started us (socket activation), our
  // stdout is its stdout: everything human goes to stderr then.
  // A reader that goes away (dmkit serve | head -1) must not take the server down: output to a
  // closed pipe is dropped.
  const closed = new Set();
  for (const out of [process.stdout, process.stderr]) {
    out.on('error', (e) => { if (/** @type {any} */ (e).code === 'EPIPE') closed.add(out); else throw e; });
  }
  const write = (out, text) => { if (!closed.has(out)) out.write(text); };
  const say = (line) => write(stdio || activated ? process.stderr : process.stdout, line + '\n');
  const log = (line) => write(process.stderr, `dmkit: ${line}\n`);
  const info = options.quiet ? () => {} : log;

  const tcp = options.listen ? parseListen(options.listen, !!options['allow-remote']) : null;
  if (stdio && (tcp || options.socket || activated)) throw new UsageError('--stdio serves one connection on stdin/stdout: it cannot be combined with --listen, --socket or socket activation');
  const attachSpecs = (options.attach ?? []).map(parseAttachSpec);
  if (stdio && attachSpecs.length) throw new UsageError('--attach needs a listening server: it cannot be combined with --stdio');
  const streams = stdio ? stdioStreams() : null;
  const setup = collectSetup(options);
  const security = securityOf(options);
  const readOnly = !!options['read-only'];
  const syncMaxBytes = options['sync-io-max'] === undefined ? undefined : parseBytesOption('--sync-io-max', options['sync-io-max']);
  const sendfileMin = options['sendfile-min'] === undefined ? DEFAULT_SENDFILE_MIN : parseBytesOption('--sendfile-min', options['sendfile-min']);
  const lanes = options['pool-writes'] ? { lanes: null, why: null } : loadWriteLanes(log);
  if (lanes.why) info(`large writes go to the thread pool: ${lanes.why}`);
  const receive = options['loop-receive'] ? { threads: null, why: null } : loadReceiveThreads();
  if (receive.why) info(`requests are read on the event loop: ${receive.why}`);
  const registry = await DeviceRegistry.create({
    readOnly, log, testClock: !!options['test-clock'], syncMaxBytes, writeLanes: lanes.lanes, writeMaps: receive.threads?.WriteMap ?? null,
  });
  try {
    for (const img of setup.images) registry.engine.addFile(img.path, { createBytes: img.bytes, readOnly });
    // Errors name the device already (as dmsetup's do).
    for (const dev of setup.devices) await registry.create(dev.name, dev.table);
    registry.engine.closeUnused();
  } catch (e) {
    await registry.close();
    throw e;
  }

  const files = loadFileSender(sendfileMin);
  if (files.why) info(`large reads pass through memory: ${files.why}`);
  // Until it listens, a listener's failure is the one line serve exits with, not a log line too.
  let listened = false;
  const exportsView = security.exports(registry);
  const server = new NbdServer({
    exports: exportsView, tls: security.tls, limits: security.limits, log: info,
    onError: (line) => { if (listened) log(line); }, sendFiles: files.sender, receiveThreads: receive.threads,
  });
  const attacher = createAttacher(server, registry, info);
  /** @type {{close: () => Promise<unknown>} | null} */
  let control = null;
  const verbs = { ...attacher.verbs, exports: async () => formatExports(registry, exportsView.listExports()) };
  if (!stdio && !activated) control = await openControl(registry, options.control, info, verbs, log);
  else if (options.control) control = await startControlServer(registry, options.control, info, verbs, log);

  let stopping = false;
  /** @param {string} why @param {boolean} [quiet] a failed start: its error is all there is to say */
  const stop = async (why, quiet = false) => {
    if (stopping) return;
    stopping = true;
    const say = quiet ? () => {} : info;
    say(`${why}: stopping`);
    // Attached devices first: their flush needs the server still serving.
    await attacher.manager.detachAll().catch((e) => { log(e.message); process.exitCode = 1; });
    await server.close();
    if (control) await control.close();
    await registry.close();
    say('flushed and closed');
  };
  /** @type {Promise<string>} */
  const signalled = new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });

  if (streams) {
    listened = true;
    await stop(await Promise.race([server.serveStream(streams.input, streams.output).then(() => 'client disconnected'), signalled]));
    return;
  }
  /** @type {{host: string, port: number} | null} where TCP clients connect (port 0: the one we got) */
  let listening = null;
  try {
    if (activated) {
      const n = server.serveSystemdSockets();
      info(`listening on ${n} socket-activated descriptor(s)`);
    } else {
      if (options.socket) {
        const dir = dirname(options.socket);
        if (!existsSync(dir)) throw new Error(`cannot listen on ${options.socket}: no such directory ${dir}`);
        await server.listenUnix(options.socket);
      }
      if (tcp || !options.socket) {
        const host = tcp?.host ?? '127.0.0.1';
        const port = tcp?.port ?? 10809;
        const address = await server.listenTcp(host, port).catch((e) => { throw listenError(e, host, port); });
        listening = { host, port: address.port };
      }
    }
  } catch (e) {
    await stop('cannot listen', true);
    throw e;
  }
  listened = true;
  printAttachHelp(say, exportsView, options.socket, listening, control, tlsClientHint(options));
  try {
    await attachAtStart(attacher.manager, attachSpecs, say);
  } catch (e) {
    await stop('cannot attach');
    throw e;
  }
  await stop(await signalled);
}

/**
 * NBD on fd 0 / fd 1, as nbdkit -s has it: the client (libnbd's connect_command, nbdsh, nbdinfo
 * [ ... ]) starts us with one end of a socketpair (or pipes) as stdin and stdout.
 */
function stdioStreams() {
  for (const fd of [0, 1]) {
    const st = fstatSync(fd);
    if (!st.isSocket() && !st.isFIFO()) {
      throw new UsageError(`--stdio needs a socket or pipe on ${fd === 0 ? 'stdin' : 'stdout'}: it is meant to be started by an NBD client through libnbd's connect_command, e.g. nbdsh -c 'h.connect_command(["dmkit", "serve", "--stdio", ...])' (nbdinfo [ dmkit serve ... ] uses socket activation instead: no --stdio)`);
    }
  }
  const input = new net.Socket({ fd: 0, readable: true, writable: false, allowHalfOpen: true });
  const output = new net.Socket({ fd: 1, readable: false, writable: true });
  return { input, output };
}

function systemdActivated() {
  return !!process.env.LISTEN_FDS && Number(process.env.LISTEN_PID) === process.pid;
}

/** Images and devices from --config, --image and --device; the embedded default if none. */
function collectSetup(options) {
  const setup = { images: [], devices: [] };
  if (options.config) {
    const c = readConfig(options.config);
    setup.images.push(...c.images);
    setup.devices.push(...c.devices);
  }
  for (const spec of options.image ?? []) {
    const eq = spec.lastIndexOf('=');
    if (eq <= 0) throw new UsageError(`--image expects PATH=SIZE, got '${spec}'`);
    let bytes;
    try { bytes = parseSize(spec.slice(eq + 1)); } catch (e) { throw new UsageError(`--image ${spec}: ${e.message}`); }
    setup.images.push({ path: spec.slice(0, eq), bytes });
  }
  for (const [name, table] of options.device ?? []) setup.devices.push({ name, table });
  if (options.empty) {
    if (setup.devices.length > 0) throw new UsageError('--empty and devices (--device, --config) exclude each other');
    return setup;
  }
  if (setup.devices.length === 0) {
    if (setup.images.length > 0) throw new UsageError('--image creates files but no --device uses them');
    const dir = options.data ?? defaultDataDir();
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      const why = { EACCES: 'permission denied', EPERM: 'permission denied', ENOTDIR: 'a part of its path is a file', EROFS: 'read-only file system', EEXIST: 'it exists and is not a folder' }[e.code];
      throw new Error(`cannot create the data folder ${dir}: ${why ?? e.message} (choose another with --data DIR or $DMKIT_DATA)`);
    }
    return defaultSetup(dir);
  }
  return setup;
}

/** A byte count option: digits only, at most 2 GiB. */
function parseBytesOption(name, text) {
  if (!/^\d+$/.test(text) || Number(text) > 2 ** 31) throw new UsageError(`${name} expects a number of bytes, got '${text}'`);
  return Number(text);
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

function parseListen(text, allowRemote) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--listen expects HOST:PORT, got '${text}'`);
  const host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`--listen port must be 0-65535, got ${m[3]}`);
  if (!LOOPBACK.test(host) && !allowRemote) {
    throw new UsageError(`refusing to listen on ${host}, which is not loopback: NBD has no authentication here; pass --allow-remote if you mean it`);
  }
  return { host, port };
}

/** A TCP listen failure in words, with what to do about the common ones. */
function listenError(e, host, port) {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const code = /** @type {any} */ (e).code;
  if (code === 'EADDRINUSE') return new Error(`cannot listen on ${where}: address already in use (another server runs there; pick another with --listen HOST:PORT)`);
  if (code === 'EADDRNOTAVAIL') return new Error(`cannot listen on ${where}: no such local address`);
  if (code === 'EACCES') return new Error(`cannot listen on ${where}: permission denied (ports below 1024 need root)`);
  return new Error(`cannot listen on ${where}: ${e.message}`);
}

async function openControl(registry, explicit, info, verbs, logError) {
  if (explicit) return startControlServer(registry, explicit, info, verbs, logError);
  try {
    return await startControlServer(registry, defaultControlPath(), info, verbs, logError);
  } catch (e) {
    info(`control socket disabled: ${e.message}`);
    return null;
  }
}

/**
 * How a client reaches the exports when TLS is on: libnbd's URI scheme and query (the PSK user
 * is the file's first), and whether a plain client (nbd-client without TLS options) is refused.
 * @returns {{scheme: string, user: string, query: string, required: boolean} | null}
 */
function tlsClientHint(options) {
  if (!options.tls || options.tls === 'off') return null;
  const required = options.tls === 'require';
  if (options['tls-psk']) {
    const user = [...readPskFile(options['tls-psk']).keys()][0];
    return { scheme: 'nbds', user: `${user}@`, query: `tls-psk-file=${options['tls-psk']}`, required };
  }
  return { scheme: 'nbds', user: '', query: `tls-certificates=${options['tls-certificates']}`, required };
}

/** @param {{listExports(): {name: string, size(): number}[]}} exportsView what clients can open */
function printAttachHelp(say, exportsView, socketPath, tcp, control, tls) {
  const exportsList = exportsView.listExports();
  const tcpWhere = tcp ? `${tcp.host.includes(':') ? `[${tcp.host}]` : tcp.host}:${tcp.port}` : '';
  const where = [socketPath ? `unix:${socketPath}` : '', tcpWhere].filter(Boolean).join(' and ');
  say(`dmkit: serving ${exportsList.length} export(s) on ${where || 'socket-activated descriptors'}`);
  let n = 0;
  for (const ex of exportsList) {
    say(`  ${ex.name}  ${formatSize(ex.size())}`);
    // With TLS, the URIs a libnbd client needs (nbdinfo, nbdcopy, nbdsh); nbd-client needs its
    // own TLS options (-x, -A...) when TLS is required.
    const scheme = tls?.scheme ?? 'nbd';
    const user = tls?.user ?? '';
    const attach = (line) => say(tls?.required ? '    attach: nbd-client needs its TLS options (-x, -A CA-CERT...; nbd-client(8))' : `    attach: ${line}`);
    if (tcp) {
      const host = tcp.host.includes(':') ? `[${tcp.host}]` : tcp.host;
      say(`    uri:    ${scheme}://${user}${host}:${tcp.port}/${ex.name}${tls ? `?${tls.query}` : ''}`);
      attach(`nbd-client ${tcp.host} ${tcp.port} /dev/nbd${n} -N ${ex.name}`);
    }
    if (socketPath) {
      say(`    uri:    ${scheme}+unix://${user}/${ex.name}?socket=${socketPath}${tls ? `&${tls.query}` : ''}`);
      attach(`nbd-client -u ${socketPath} /dev/nbd${n} -N ${ex.name}`);
    }
    n++;
  }
  say('  (nbd-client needs the nbd module: modprobe nbd)');
  if (control) {
    const flag = control.path === defaultControlPath() ? '' : ` --control ${control.path}`;
    say(`  or without nbd-client: dmkit attach${flag} ${exportsList[0]?.name ?? 'NAME'}   (as root, docs/attach.md)`);
    say(`control: dmkit ls${flag}   (Ctrl-C to stop)`);
  }
  say('in a browser instead: dmkit demo   (docs/browser.md)');
}
