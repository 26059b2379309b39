// @ts-check
// dmkit attach NAME [/dev/nbdN] | dmkit detach /dev/nbdN: exports as kernel block devices without
// nbd-client. attach asks the running server (control socket) to connect the device itself;
// detach talks to the kernel directly, so it also frees a device whose server died.
import { parseArgs, UsageError } from './args.js';
import { controlRequest } from '../control/client.js';
import { defaultControlPath } from '../control/paths.js';
import { DEFAULTS } from '../attach/manager.js';

export const ATTACH_HELP = `Usage: dmkit attach NAME [/dev/nbdN] [options]
       dmkit attach --list

Attach export NAME of the running \`dmkit serve\` as a kernel block device, without nbd-client:
the server connects the device itself, through socket pairs to its own NBD server. With no
device given, the first free one is taken; the device is printed. It stays attached while the
server runs: \`dmkit detach\`, or stopping the server (SIGTERM), flushes and detaches it.
Needs root and the nbd module (modprobe nbd).

A device still bound to NAME whose server died (killed, crashed) gets the new connections:
I/O that was waiting on it carries on.

The device has the export's size: an attach or reattach gives it the size the export has then,
and a resume that changes the export's size (a longer or shorter table: dmkit reload, dmkit
resume) resizes it at once, as device-mapper does. It keeps its block size, so a size that is not
a multiple of it is not applied (the server's log says so).

Options:
  --method netlink|ioctl  the kernel interface (default: netlink when the kernel has it)
  --connections N         connections to the device (default: one per core, at most
                          ${DEFAULTS.maxConnections}, when the export allows several; else 1)
  --block-size B          logical block size: 512 (default), 1024, 2048 or 4096
  --timeout S             seconds a request may take before the kernel drops its connection
                          (default ${DEFAULTS.timeout}; 0: never)
  --dead-timeout S        seconds I/O waits for a reattach once every connection is gone, then
                          fails (default ${DEFAULTS.deadTimeout}; netlink only)
  --list                  list the devices the server has attached
  --control PATH          control socket of the server (default: $DMKIT_CONTROL or
                          ${defaultControlPath()})
  -h, --help              this help
`;

export const DETACH_HELP = `Usage: dmkit detach /dev/nbdN [--force] [--method netlink|ioctl]

Flush /dev/nbdN (its dirty pages are written and a FLUSH reaches its server) and disconnect it,
whoever attached it (\`dmkit attach\`, \`dmkit serve --attach\`, nbd-client). A device whose dmkit
server died is disconnected without a flush, since nothing can answer one.
Refuses a device that is mounted or held by device-mapper, and a device whose flush fails (what
was written may not be durable), unless --force: every filesystem is then written back first,
and a failed flush is reported but does not stop the detach. Needs root.

  --force                 detach even while the device is in use or its flush fails
  --method netlink|ioctl  the kernel interface (default: netlink when the kernel has it)
  -h, --help              this help
`;

/** @param {string[]} argv */
export async function attachCommand(argv) {
  const { options, positional } = parseArgs(argv, {
    method: { type: 'string' }, connections: { type: 'string' }, 'block-size': { type: 'string' },
    timeout: { type: 'string' }, 'dead-timeout': { type: 'string' }, list: { type: 'boolean' },
    control: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  });
  if (options.help) { process.stdout.write(ATTACH_HELP); return; }
  const control = options.control ?? defaultControlPath();
  if (options.list) {
    if (positional.length) throw new UsageError('--list takes no device name');
    const out = await controlRequest(control, { cmd: 'attachments' });
    process.stdout.write(out ? `${out}\n` : 'no attached devices\n');
    return;
  }
  if (positional.length < 1 || positional.length > 2) throw new UsageError(`attach needs NAME and optionally /dev/nbdN\n\n${ATTACH_HELP}`);
  const [name, device] = positional;
  const request = {
    cmd: 'attach', name, device,
    method: method(options.method),
    connections: integer('--connections', options.connections),
    blockSize: integer('--block-size', options['block-size']),
    timeout: integer('--timeout', options.timeout),
    deadTimeout: integer('--dead-timeout', options['dead-timeout']),
  };
  const path = await controlRequest(control, request);
  process.stdout.write(`${path}\n`);
}

/** @param {string[]} argv */
export async function detachCommand(argv) {
  const { options, positional } = parseArgs(argv, {
    force: { type: 'boolean' }, method: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  });
  if (options.help) { process.stdout.write(DETACH_HELP); return; }
  if (positional.length !== 1) throw new UsageError(`detach needs one device (/dev/nbdN)\n\n${DETACH_HELP}`);
  const { detachDevice } = await import('../attach/detach.js');
  const said = await detachDevice(positional[0], {
    force: !!options.force,
    method: method(options.method),
    log: (line) => process.stderr.write(`dmkit: ${line}\n`),
  });
  process.stdout.write(`${said}\n`);
}

function method(text) {
  if (text === undefined) return undefined;
  if (text !== 'netlink' && text !== 'ioctl') throw new UsageError(`--method must be netlink or ioctl, got '${text}'`);
  return text;
}

function integer(flag, text) {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} needs a whole number, got '${text}'`);
  return Number(text);
}
