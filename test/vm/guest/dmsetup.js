// @ts-check
// dmsetup(8) for code running in the VM guest: one function per verb, errors as values with
// dmsetup's own message. There is no udev in the guest, so libdevmapper is told to make the
// /dev/mapper nodes itself (DM_DISABLE_UDEV), or they would never appear.
import { execFile } from 'node:child_process';
import { openSync, readSync, closeSync, statSync, readdirSync, readFileSync, constants } from 'node:fs';

const ENV = { ...process.env, DM_DISABLE_UDEV: '1' };

export class DmsetupError extends Error {
  /** @param {string[]} args @param {string} stderr */
  constructor(args, stderr) {
    super(`dmsetup ${args.join(' ')}: ${stderr.trim() || 'failed'}`);
    this.name = 'DmsetupError';
    this.stderr = stderr;
    // dmsetup has no errno in its exit status; its message carries the ioctl's strerror.
    this.code = /busy/i.test(stderr) ? 'EBUSY' : /exists/i.test(stderr) ? 'EEXIST'
      : /no such device/i.test(stderr) ? 'ENXIO' : 'EINVAL';
  }
}

/** Runs dmsetup; resolves with its stdout, rejects with a DmsetupError. */
export function dmsetup(/** @type {string[]} */ args, input = '') {
  return new Promise((resolve, reject) => {
    const child = execFile('dmsetup', args, { env: ENV }, (err, stdout, stderr) => {
      if (err) reject(new DmsetupError(args, stderr || err.message));
      else resolve(stdout);
    });
    // dmsetup may exit before reading its input (a refused table): its exit status says why,
    // the broken pipe adds nothing.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });
}

/** dmsetup create NAME, table from stdin (one segment per line). */
export const create = (/** @type {string} */ name, /** @type {string} */ table) => dmsetup(['create', name], table + '\n');
/** dmsetup reload NAME: the table becomes the inactive one, live at the next resume. */
export const reload = (/** @type {string} */ name, /** @type {string} */ table) => dmsetup(['reload', name], table + '\n');
export const suspend = (/** @type {string} */ name) => dmsetup(['suspend', name]);
export const resume = (/** @type {string} */ name) => dmsetup(['resume', name]);
/** dmsetup remove NAME...: several at once, in the order given (upper devices first). */
export const remove = (/** @type {string[]} */ ...names) => dmsetup(['remove', '--retry', ...names]);
export const message = (/** @type {string} */ name, /** @type {number} */ sector, /** @type {string[]} */ words) =>
  dmsetup(['message', name, String(sector), ...words]);

/** dmsetup status / table NAME as lines, trailing blanks removed. */
export async function statusLines(/** @type {string} */ name) {
  return lines(await dmsetup(['status', name]));
}
export async function tableLines(/** @type {string} */ name) {
  return lines(await dmsetup(['table', name]));
}
const lines = (/** @type {string} */ out) => out.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');

/** Names of the mapped devices whose names start with `prefix`, newest first (from sysfs: no
 * process to start). */
export function listDevices(/** @type {string} */ prefix) {
  return readdirSync('/sys/block').filter((b) => b.startsWith('dm-'))
    .sort((a, b) => Number(b.slice(3)) - Number(a.slice(3))) // newest (likely the top of a stack) first
    .map((b) => readFileSync(`/sys/block/${b}/dm/name`, 'utf8').trim())
    .filter((n) => n.startsWith(prefix));
}

/** "major:minor" of a block device node, as the kernel prints devices in table and status lines. */
export function devNumber(/** @type {string} */ path) {
  const rdev = statSync(path).rdev;
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & ~0xff);
  return `${major}:${minor}`;
}

/** The kernel log (/dev/kmsg) from record `after` on: [{seq, text}]. Lets a runner find the
 * message a target gave when the kernel refused a table (dmsetup only says "Invalid argument"). */
export function kernelLog(after = -1) {
  const fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
  const buf = Buffer.alloc(8192);
  const records = [];
  try {
    for (;;) {
      let n;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if (/** @type {any} */ (e).code === 'EAGAIN') break;
        if (/** @type {any} */ (e).code === 'EPIPE') continue; // overwritten records: skip ahead
        throw e;
      }
      const rec = buf.toString('utf8', 0, n);
      const semi = rec.indexOf(';');
      const seq = Number(rec.slice(0, semi).split(',')[1]);
      if (seq > after) records.push({ seq, text: rec.slice(semi + 1).split('\n')[0] });
    }
  } finally {
    closeSync(fd);
  }
  return records;
}

/** Sequence number of the newest kernel log record (-1 if none). */
export function kernelLogMark() {
  const all = kernelLog();
  return all.length ? all[all.length - 1].seq : -1;
}

/** Target types the running kernel has registered (dmsetup targets). */
export async function targets() {
  const out = await dmsetup(['targets']);
  return out.split('\n').map((l) => l.split(/\s+/)[0]).filter(Boolean);
}
