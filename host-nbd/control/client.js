// @ts-check
// Sends one control request to a running `dmkit serve` and returns its answer.
import net from 'node:net';

/**
 * @param {string} path @param {object} request
 * @returns {Promise<string>} the output; a failure rejects with the server's message and, for
 *   errors from the core, `code` (the errno name)
 */
export function controlRequest(path, request) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let data = '';
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(JSON.stringify(request) + '\n'));
    sock.on('data', (chunk) => {
      data += chunk;
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      sock.end();
      let reply;
      try { reply = JSON.parse(data.slice(0, nl)); } catch { reject(new Error('malformed answer from the server')); return; }
      if (reply.ok) resolve(reply.output);
      else reject(Object.assign(new Error(reply.error), { code: reply.code }));
    });
    sock.once('error', (e) => {
      const code = /** @type {any} */ (e).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED') {
        reject(new Error(`no dmkit server is running on control socket ${path} (start one with 'dmkit serve', or pass --control PATH)`));
      } else if (code === 'EACCES') {
        reject(new Error(`permission denied on control socket ${path}: it belongs to the user running the server`));
      } else reject(e);
    });
  });
}
