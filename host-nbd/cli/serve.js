// @ts-check
// dmkit serve: mapped devices from a config file and/or the command line, each served as an
// NBD export, with a control socket for dmsetup-style changes while serving.
import { mkdirSync } from 'node:fs';
import { parseArgs, UsageError } from './args.js';
import { DeviceRegistry } from '../devices/registry.js';
import { readConfig } from '../devices/config.js';
import { parseSize, formatSize } from '../devices/sizes.js';
import { defaultDataDir, defaultSetup } from '../devices/defaults.js';
import { startControlServer } from '../control/server.js';
import { defaultControlPath } from '../control/paths.js';
import { NbdServer } from '../server/server.js';

export const SERVE_HELP = `Usage: dmkit serve [options]

Serve mapped devices as NBD exports (the export name is the device name).

Devices:
  --device NAME TABLE   create device NAME with TABLE (dmsetup syntax; several lines allowed).
                        Repeatable; later devices may stack on earlier ones.
  --config FILE         read images and devices from FILE ('image PATH SIZE', 'device NAME'
                        followed by its table lines)
  --image PATH=SIZE     create a sparse image file of SIZE (e.g. 64M, 1G) if it does not exist
  --read-only           refuse writes on every export
  With no device at all, serves the embedded default: a sparse 1 GiB image in the data folder
  (--data DIR, default $DMKIT_DATA or ~/.local/share/dmkit) with device 'disk' over it.

Listening (default: TCP 127.0.0.1:10809):
  --listen HOST:PORT    TCP address; only loopback unless --allow-remote is given
  --allow-remote        allow --listen on a non-loopback address
  --socket PATH         Unix socket (no TCP unless --listen is given as well)
  --stdio               serve one NBD connection on standard input/output, then exit
  Systemd socket activation (LISTEN_FDS/LISTEN_PID) is used when present.

Control:
  --control PATH        control socket for dmkit ls/create/reload/... (default: $DMKIT_CONTROL or
                        ${defaultControlPath()})
  --quiet               log errors only
  -h, --help            this help

Example:
  truncate -s 64M /tmp/d.img && dmkit serve --socket /tmp/s.sock --device disk '0 131072 linear /tmp/d.img 0'
`;

const SPEC = /** @type {const} */ ({
  device: { type: 'pairs' }, config: { type: 'string' }, image: { type: 'list' }, 'read-only': { type: 'boolean' },
  data: { type: 'string' }, listen: { type: 'string' }, 'allow-remote': { type: 'boolean' }, socket: { type: 'string' },
  stdio: { type: 'boolean' }, control: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
});

/** @param {string[]} argv */
export async function serve(argv) {
  const { options, positional } = parseArgs(argv, /** @type {any} */ (SPEC));
  if (options.help) { process.stdout.write(SERVE_HELP); return; }
  if (positional.length) throw new UsageError(`unexpected argument '${positional[0]}' (devices are given as --device NAME TABLE)`);
  const stdio = !!options.stdio;
  const activated = systemdActivated();
  // With --stdio, stdout is the NBD stream: everything human goes to stderr.
  const say = (line) => (stdio ? process.stderr : process.stdout).write(line + '\n');
  const log = (line) => process.stderr.write(`dmkit: ${line}\n`);
  const info = options.quiet ? () => {} : log;

  const tcp = options.listen ? parseListen(options.listen, !!options['allow-remote']) : null;
  const setup = collectSetup(options);
  const registry = await DeviceRegistry.create({ readOnly: !!options['read-only'], log });
  try {
    for (const img of setup.images) await registry.engine.addFile(img.path, { createBytes: img.bytes, readOnly: !!options['read-only'] });
    for (const dev of setup.devices) {
      try {
        await registry.create(dev.name, dev.table);
      } catch (e) {
        throw new Error(`device ${dev.name}: ${e.message}`);
      }
    }
    await registry.engine.closeUnused();
  } catch (e) {
    await registry.close();
    throw e;
  }

  const server = new NbdServer({ exports: registry, log: info, onError: log });
  /** @type {{close: () => Promise<unknown>} | null} */
  let control = null;
  if (!stdio && !activated) control = await openControl(registry, options.control, info);
  else if (options.control) control = await startControlServer(registry, options.control, info);

  let stopping = false;
  const stop = async (why) => {
    if (stopping) return;
    stopping = true;
    info(`${why}: stopping`);
    await server.close();
    if (control) await control.close();
    await registry.close();
    info('flushed and closed');
  };

  if (stdio) {
    await server.serveStream(process.stdin, process.stdout);
    await stop('client disconnected');
    return;
  }
  if (activated) {
    server.serveSystemdSockets();
    info(`listening on ${process.env.LISTEN_FDS} socket-activated descriptor(s)`);
  } else {
    if (options.socket) await server.listenUnix(options.socket);
    if (tcp || !options.socket) await server.listenTcp(tcp?.host ?? '127.0.0.1', tcp?.port ?? 10809);
  }
  printAttachHelp(say, registry, options.socket, activated ? null : tcp ?? (options.socket ? null : { host: '127.0.0.1', port: 10809 }), control);

  await new Promise((resolve) => {
    const onSignal = (sig) => { stop(sig).then(resolve, (e) => { log(`error while stopping: ${e.message}`); resolve(undefined); }); };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
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
    setup.images.push({ path: spec.slice(0, eq), bytes: parseSize(spec.slice(eq + 1)) });
  }
  for (const [name, table] of options.device ?? []) setup.devices.push({ name, table });
  if (setup.devices.length === 0) {
    if (setup.images.length > 0) throw new UsageError('--image creates files but no --device uses them');
    const dir = options.data ?? defaultDataDir();
    mkdirSync(dir, { recursive: true });
    return defaultSetup(dir);
  }
  return setup;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

function parseListen(text, allowRemote) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--listen expects HOST:PORT, got '${text}'`);
  const host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`invalid port ${port}`);
  if (!LOOPBACK.test(host) && !allowRemote) {
    throw new UsageError(`refusing to listen on ${host}, which is not loopback: NBD has no authentication here; pass --allow-remote if you mean it`);
  }
  return { host, port };
}

async function openControl(registry, explicit, info) {
  if (explicit) return startControlServer(registry, explicit, info);
  try {
    return await startControlServer(registry, defaultControlPath(), info);
  } catch (e) {
    info(`control socket disabled: ${e.message}`);
    return null;
  }
}

function printAttachHelp(say, registry, socketPath, tcp, control) {
  const exportsList = registry.listExports();
  const where = [socketPath ? `unix:${socketPath}` : '', tcp ? `${tcp.host}:${tcp.port}` : ''].filter(Boolean).join(' and ');
  say(`dmkit: serving ${exportsList.length} export(s) on ${where || 'socket-activated descriptors'}`);
  let n = 0;
  for (const ex of exportsList) {
    say(`  ${ex.name}  ${formatSize(ex.size())}`);
    if (tcp) {
      const host = tcp.host.includes(':') ? `[${tcp.host}]` : tcp.host;
      say(`    uri:    nbd://${host}:${tcp.port}/${ex.name}`);
      say(`    attach: nbd-client ${tcp.host} ${tcp.port} /dev/nbd${n} -N ${ex.name}`);
    }
    if (socketPath) {
      say(`    uri:    nbd+unix:///${ex.name}?socket=${socketPath}`);
      say(`    attach: nbd-client -u ${socketPath} /dev/nbd${n} -N ${ex.name}`);
    }
    n++;
  }
  say('  (nbd-client needs the nbd module: modprobe nbd)');
  if (control) say(`control: dmkit ls${control.path === defaultControlPath() ? '' : ` --control ${control.path}`}   (Ctrl-C to stop)`);
}
