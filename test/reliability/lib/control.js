// @ts-check
// One request to a running server's control socket (JSON lines, see host-nbd/control/server.js),
// without starting a CLI process: the crash tests ask for a merge's status right before a kill.
import net from 'node:net';

/** @param {string} path @param {object} request @returns {Promise<string>} */
export function control(path, request) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let data = '';
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(JSON.stringify(request) + '\n'));
    sock.on('data', (d) => {
      data += d;
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      sock.destroy();
      const reply = JSON.parse(data.slice(0, nl));
      if (reply.ok) resolve(reply.output);
      else reject(new Error(reply.error));
    });
    sock.once('error', reject);
  });
}

/**
 * A snapshot or snapshot-merge status line, parsed: `<allocated>/<total> <metadata>`, or the
 * word the kernel prints instead (Invalid, Overflow, Merge failed).
 * @param {string} line "start length target info"
 */
export function snapshotStatus(line) {
  const info = line.trim().split(/\s+/).slice(3).join(' ');
  const m = /^(\d+)\/(\d+) (\d+)$/.exec(info);
  if (!m) return { word: info, allocated: NaN, total: NaN, metadata: NaN };
  return { word: '', allocated: Number(m[1]), total: Number(m[2]), metadata: Number(m[3]) };
}
