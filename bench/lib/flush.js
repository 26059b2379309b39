// @ts-check
// One NBD FLUSH, timed inside the client (libnbd's nbdsh) so that connecting is not in it: what
// it takes a server to make every write it acknowledged durable.
import { capture } from './capture.js';

const TIMED_FLUSH = 'import time\nt = time.monotonic()\nh.flush()\nprint(time.monotonic() - t)';

/** @param {string} uri @returns {Promise<number>} seconds */
export async function flushSeconds(uri) {
  const { code, stdout, stderr } = await capture('nbdsh', ['-u', uri, '-c', TIMED_FLUSH]);
  const seconds = Number(stdout.trim());
  if (code !== 0 || !Number.isFinite(seconds)) throw new Error(`nbdsh could not flush ${uri} (exit ${code}): ${stderr}${stdout}`);
  return seconds;
}
