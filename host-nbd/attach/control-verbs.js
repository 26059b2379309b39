// @ts-check
// The control-socket verbs of attaching: `dmkit attach` sends {cmd: 'attach', name, device?, ...}
// and prints the device the server attached; {cmd: 'attachments'} lists them; {cmd: 'detach',
// device} detaches one of them from inside the server (`dmkit detach` goes through the kernel
// instead, so that it works whoever attached the device). The server's control socket passes
// these requests here.
import { AttachError } from './errors.js';

/** @param {import('./manager.js').AttachManager} manager */
export function attachVerbs(manager) {
  return {
    /** @param {any} req @returns {Promise<string>} the device path */
    async attach(req) {
      if (typeof req.name !== 'string' || !req.name) throw new AttachError('attach needs a device name');
      const opt = (key, type) => {
        if (req[key] === undefined || req[key] === null) return undefined;
        if (typeof req[key] !== type) throw new AttachError(`attach: ${key} must be a ${type}`);
        return req[key];
      };
      const a = await manager.attach(req.name, {
        device: opt('device', 'string'),
        method: opt('method', 'string'),
        connections: opt('connections', 'number'),
        blockSize: opt('blockSize', 'number'),
        timeout: opt('timeout', 'number'),
        deadTimeout: opt('deadTimeout', 'number'),
      });
      return a.path;
    },
    /** @param {any} req {device, force?} one of this server's devices @returns {Promise<string>} */
    async detach(req) {
      if (typeof req.device !== 'string') throw new AttachError('detach needs a device (/dev/nbdN)');
      const a = manager.get(req.device);
      if (!a) throw new AttachError(`${req.device} is not attached by this server`);
      await a.detach({ force: !!req.force });
      return `${a.path}: flushed and detached`;
    },
    /** @returns {Promise<string>} one line per attached device */
    async attachments() {
      return manager.list()
        .map((d) => `${d.device}\t${d.export}\t${d.method}, ${d.connections} connection${d.connections > 1 ? 's' : ''}`)
        .join('\n');
    },
  };
}
