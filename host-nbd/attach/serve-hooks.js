// @ts-check
// What `dmkit serve` needs to attach its own exports: an AttachManager wired to its NBD server,
// the control verbs, and --attach NAME[=/dev/nbdN] at start. Kept here so serve.js only calls in.
import { AttachManager } from './manager.js';
import { attachVerbs } from './control-verbs.js';
import { UsageError } from '../cli/args.js';

/**
 * @param {import('../server/server.js').NbdServer} server
 * @param {import('../devices/registry.js').DeviceRegistry} registry
 * @param {(line: string) => void} log
 */
export function createAttacher(server, registry, log) {
  const manager = new AttachManager({
    serveFd: (fd) => {
      const conn = server.serveFd(fd, 'kernel');
      return { socket: /** @type {import('node:net').Socket} */ (conn.input), done: conn.done };
    },
    hasExport: (name) => registry.getExport(name) !== null,
    // The kernel's requests may still be running in the engine after its sockets closed.
    idle: (name) => registry.engine.drained(registry.core.findDevice(name)),
    suspended: (name) => registry.names().includes(name) && registry.info(name).state === 'SUSPENDED',
    sizeOf: (name) => registry.getExport(name)?.size() ?? null,
    log,
  });
  // A resume that changes an export's size resizes its kernel devices too, as dm's resume does.
  registry.onSizeChange((name, bytes) => manager.resize(name, bytes));
  return { manager, verbs: attachVerbs(manager) };
}

/** --attach NAME or NAME=/dev/nbdN → {name, device}. @param {string} text */
export function parseAttachSpec(text) {
  const eq = text.indexOf('=');
  const name = eq < 0 ? text : text.slice(0, eq);
  const device = eq < 0 ? undefined : text.slice(eq + 1);
  if (!name || device === '') throw new UsageError(`--attach expects NAME or NAME=/dev/nbdN, got '${text}'`);
  return { name, device };
}

/**
 * Attaches each --attach export in order; stops at the first failure.
 * @param {AttachManager} manager
 * @param {{name: string, device?: string}[]} specs
 * @param {(line: string) => void} say
 */
export async function attachAtStart(manager, specs, say) {
  for (const spec of specs) {
    const a = await manager.attach(spec.name, { device: spec.device });
    say(`  ${spec.name} attached as ${a.path}`);
  }
}
