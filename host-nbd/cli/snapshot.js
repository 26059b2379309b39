// @ts-check
// dmkit snapshot inspect COW | merge --origin IMG --cow COW: dm-snapshot COW devices without a
// kernel. inspect reads the format directly; merge runs the core's own snapshot-merge target over
// the two files, so it does exactly what the kernel's merge does, and shows its progress.
import { open, stat } from 'node:fs/promises';
import { parseArgs, UsageError } from './args.js';
import { readCow } from '../snapshot/cow-reader.js';
import { DeviceRegistry } from '../devices/registry.js';
import { formatSize } from '../devices/sizes.js';
import { blockDeviceSize } from '../engine/file-backing.js';

export const SNAPSHOT_HELP = `Usage:
  dmkit snapshot inspect COW [--json]
      Show a dm-snapshot COW device (made by dmkit, or by the kernel / LVM): chunk size,
      validity, usage, and its exceptions (origin chunk -> COW chunk).
  dmkit snapshot merge --origin IMG --cow COW [--quiet]
      Fold the snapshot back into the origin image, as 'snapshot-merge' does: afterwards the
      origin reads as the snapshot did and the COW device holds no exceptions.
`;

/** @param {string[]} argv */
export async function snapshotCommand(argv) {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    process.stdout.write(SNAPSHOT_HELP);
    if (!sub) process.exitCode = 2; // as 'dmkit' alone: nothing was done
    return;
  }
  if (sub === 'inspect') return inspect(rest);
  if (sub === 'merge') return merge(rest);
  throw new UsageError(`unknown snapshot command '${sub}'\n\n${SNAPSHOT_HELP}`);
}

async function inspect(argv) {
  const { options, positional } = parseArgs(argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (options.help) { process.stdout.write(SNAPSHOT_HELP); return; }
  if (positional.length !== 1) throw new UsageError(`inspect needs one COW device\n\n${SNAPSHOT_HELP}`);
  const path = positional[0];
  const info = await inspectCow(path);
  if (options.json) {
    process.stdout.write(JSON.stringify({
      path, chunkSize: info.chunkSize, valid: info.valid, version: info.version,
      usage: info.usage, metadataAreas: info.areas, exceptions: info.exceptions,
    }) + '\n');
    return;
  }
  const chunkBytes = info.chunkSize * 512;
  const lines = [
    `COW device:   ${path} (${formatSize(info.cowSectors * 512)})`,
    `format:       dm-snapshot persistent, version ${info.version}`,
    `valid:        ${info.valid ? 'yes' : 'no (invalidated: the snapshot overflowed or failed)'}`,
    `chunk size:   ${info.chunkSize} sectors (${formatSize(chunkBytes)})`,
    // An invalid snapshot's metadata is not read (as in Linux, whose status then says Invalid).
    info.valid
      ? `usage:        ${info.usage.allocated}/${info.usage.total} ${info.usage.metadata}  (allocated/total metadata, in sectors, as dmsetup status)`
      : 'usage:        Invalid  (as dmsetup status)',
    info.valid
      ? `exceptions:   ${info.exceptions.length} chunk(s) copied, ${formatSize(info.exceptions.length * chunkBytes)}`
      : 'exceptions:   not read (an invalid snapshot has none that count)',
  ];
  for (const e of info.exceptions.slice(0, 1000)) lines.push(`  origin chunk ${e.old} -> COW chunk ${e.new}`);
  if (info.exceptions.length > 1000) lines.push(`  ... ${info.exceptions.length - 1000} more (use --json for all)`);
  process.stdout.write(lines.join('\n') + '\n');
}

async function merge(argv) {
  const { options, positional } = parseArgs(argv, {
    origin: { type: 'string' }, cow: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (options.help) { process.stdout.write(SNAPSHOT_HELP); return; }
  if (positional.length || !options.origin || !options.cow) throw new UsageError(`merge needs --origin IMG and --cow COW\n\n${SNAPSHOT_HELP}`);
  const { origin, cow } = options;
  // Everything is checked before the core opens the files: its snapshot-merge would make a blank
  // (or foreign) COW device a new snapshot, writing a header and a metadata area into it.
  const originFile = await withFile(origin, 'r', async (_f, size, st) => ({ size, st }));
  const info = await inspectCow(cow);
  const cowFile = await withFile(cow, 'r', async (_f, size, st) => ({ size, st }));
  const a = originFile.st, b = cowFile.st;
  if (a.isBlockDevice() && b.isBlockDevice() ? a.rdev === b.rdev : a.dev === b.dev && a.ino === b.ino) {
    throw new Error(`${origin} and ${cow} are the same file`);
  }
  if (!info.valid) throw new Error(`${cow}: the snapshot is invalid (it overflowed or failed): its exceptions cannot be merged`);
  if (originFile.size % 512 !== 0) throw new Error(`${origin}: size ${originFile.size} is not a multiple of 512 bytes`);
  const chunkBytes = info.chunkSize * 512;
  const outside = info.exceptions.find((e) => e.old * chunkBytes >= originFile.size);
  if (outside) {
    throw new Error(`${cow}: exception for origin chunk ${outside.old} lies past the end of ${origin} ` +
      `(${formatSize(originFile.size)}, chunks of ${formatSize(chunkBytes)}): is it the snapshot's origin?`);
  }
  if (info.exceptions.length === 0) {
    if (!options.quiet) process.stdout.write(`nothing to merge: ${cow} holds no exceptions\n`);
    return;
  }
  // Stopping is safe at any point (the merge commits each step after its copy is flushed, as
  // Linux's does); the same command finishes the job.
  const interrupted = (signal) => {
    if (!options.quiet && process.stderr.isTTY) process.stderr.write('\n');
    process.stderr.write(`dmkit snapshot: merge interrupted (${signal}); run the same command again to finish it\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  // A failed step stops the merge with one line naming the file and the error (the engine's I/O
  // error lines and the core's reason are kept for it, not printed); anything else the engine
  // says is printed.
  /** @type {string | null} */
  let ioError = null;
  /** Why the core's merge stopped, in dm-snap's words (its kernel-log line), for the message. */
  let mergeWhy = '';
  const log = (/** @type {string} */ l) => {
    const m = /^I\/O error on (.*)$/.exec(l);
    const why = /^device merge: snapshot-merge: (.*)$/.exec(l);
    if (m) ioError ??= m[1].replace(/ \[\d+ I\/O errors.*$/, '');
    else if (why) mergeWhy ||= why[1];
    else if (!/^flush at exit failed/.test(l)) process.stderr.write(`dmkit: ${l}\n`);
  };
  const stopped = (/** @type {unknown} */ e) => ioError
    ? new Error(`merge stopped by an I/O error on ${ioError}; what is not merged yet stays in ${cow}: run the same command again to finish it`)
    : e;
  const registry = await DeviceRegistry.create({ log });
  let failure = null;
  try {
    const sectors = originFile.size / 512;
    // The device is ours, not the user's: its name stays out of the messages.
    await registry.create('merge', `0 ${sectors} snapshot-merge ${origin} ${cow} P 0`).catch((e) => {
      throw new Error(String(e instanceof Error ? e.message : e).replace(/^merge: (line 1: )?/, ''));
    });
    // A progress bar for people only: a log (stderr not a terminal) gets no carriage returns.
    const tty = !options.quiet && process.stderr.isTTY;
    const progress = (fraction) => { if (tty) process.stderr.write(`\r${bar(fraction)}`); };
    let total = -1;
    for (;;) {
      const status = registry.status('merge').trim().split(' ').slice(3).join(' ');
      if (status === 'Invalid' || status === 'Merge failed') throw new Error(`merge stopped: ${mergeWhy ? `${mergeWhy} (` : ''}snapshot status is '${status}'${mergeWhy ? ')' : ''}`);
      const m = /^(\d+)\/(\d+) (\d+)$/.exec(status);
      if (!m) throw new Error(`unexpected snapshot status '${status}'`);
      const left = Number(m[1]) - Number(m[3]);
      if (total < 0) total = Math.max(left, 1);
      progress(1 - left / total);
      if (left <= 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (tty) process.stderr.write('\n');
    await registry.engine.flushAll();
  } catch (e) {
    failure = stopped(e);
  }
  // Closing flushes again; after a failure its error would only hide the first one.
  await registry.close().catch((e) => { failure ??= stopped(e); });
  process.off('SIGINT', interrupted);
  process.off('SIGTERM', interrupted);
  if (failure) throw failure;
  if (!options.quiet) {
    process.stdout.write(`merged ${info.exceptions.length} chunk(s) (${formatSize(info.exceptions.length * chunkBytes)}) of ${cow} into ${origin}\n`);
  }
}

function bar(fraction) {
  const width = 30, filled = Math.round(fraction * width);
  return `merging [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
}

/**
 * Reads a COW device with the independent reader; every refusal names the file.
 * @param {string} path
 */
async function inspectCow(path) {
  return withFile(path, 'r', async (f, size) => {
    try {
      return await readCow(async (pos, len) => {
        const buf = new Uint8Array(len);
        const { bytesRead } = await f.read(buf, 0, len, pos);
        if (bytesRead < len) throw new Error(`short read at ${pos}`);
        return buf;
      }, size);
    } catch (e) {
      throw new Error(`${path}: ${e instanceof Error ? e.message : e}`);
    }
  });
}

/**
 * Opens a regular file or block device; fn gets its size in bytes (a block device's from sysfs:
 * stat says 0) and its stat.
 * @template T @param {string} path @param {string} flags
 * @param {(f: import('node:fs/promises').FileHandle, size: number, st: import('node:fs').Stats) => Promise<T>} fn
 */
async function withFile(path, flags, fn) {
  const why = (e) => {
    const code = /** @type {any} */ (e).code;
    const words = { ENOENT: 'no such file', EACCES: 'permission denied', EPERM: 'permission denied', EISDIR: 'is a directory' }[code];
    return new Error(`${path}: ${words ?? /** @type {Error} */ (e).message}`);
  };
  // Checked before opening: opening a FIFO for reading waits for a writer, forever.
  const before = await stat(path).catch((e) => { throw why(e); });
  if (before.isDirectory()) throw new Error(`${path}: is a directory`);
  if (!before.isFile() && !before.isBlockDevice()) throw new Error(`${path}: not a regular file or block device`);
  let f;
  try {
    f = await open(path, flags);
  } catch (e) {
    throw why(e);
  }
  try {
    const st = await f.stat();
    if (!st.isFile() && !st.isBlockDevice()) throw new Error(`${path}: not a regular file or block device`);
    return await fn(f, st.isBlockDevice() ? blockDeviceSize(st.rdev) : st.size, st);
  } finally {
    await f.close();
  }
}

