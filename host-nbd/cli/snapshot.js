// @ts-check
// dmkit snapshot inspect COW | merge --origin IMG --cow COW: dm-snapshot COW devices without a
// kernel. inspect reads the format directly; merge runs the core's own snapshot-merge target over
// the two files, so it does exactly what the kernel's merge does, and shows its progress.
import { open } from 'node:fs/promises';
import { parseArgs, UsageError } from './args.js';
import { readCow } from '../snapshot/cow-reader.js';
import { DeviceRegistry } from '../devices/registry.js';
import { formatSize } from '../devices/sizes.js';

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
  if (!sub || sub === '--help' || sub === '-h') { process.stdout.write(SNAPSHOT_HELP); return; }
  if (sub === 'inspect') return inspect(rest);
  if (sub === 'merge') return merge(rest);
  throw new UsageError(`unknown snapshot command '${sub}'\n\n${SNAPSHOT_HELP}`);
}

async function inspect(argv) {
  const { options, positional } = parseArgs(argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (options.help) { process.stdout.write(SNAPSHOT_HELP); return; }
  if (positional.length !== 1) throw new UsageError(`inspect needs one COW device\n\n${SNAPSHOT_HELP}`);
  const path = positional[0];
  const info = await withFile(path, 'r', async (f, size) => readCow(async (pos, len) => {
    const buf = new Uint8Array(len);
    const { bytesRead } = await f.read(buf, 0, len, pos);
    if (bytesRead < len) throw new Error(`${path}: short read at ${pos}`);
    return buf;
  }, size));
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
    `usage:        ${info.usage.allocated}/${info.usage.total} ${info.usage.metadata}  (allocated/total metadata, in sectors, as dmsetup status)`,
    `exceptions:   ${info.exceptions.length} chunk(s) copied, ${formatSize(info.exceptions.length * chunkBytes)}`,
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
  const originBytes = await withFile(options.origin, 'r', async (_f, size) => size);
  const registry = await DeviceRegistry.create({ log: (l) => process.stderr.write(`dmkit: ${l}\n`) });
  try {
    const sectors = Math.floor(originBytes / 512);
    await registry.create('merge', `0 ${sectors} snapshot-merge ${options.origin} ${options.cow} P 0`);
    const progress = (text) => { if (!options.quiet && process.stderr.isTTY) process.stderr.write(`\r${text}`); };
    let total = -1;
    for (;;) {
      const status = registry.status('merge').trim().split(' ').slice(3).join(' ');
      if (status === 'Invalid' || status === 'Merge failed') throw new Error(`merge stopped: snapshot status is '${status}'`);
      const m = /^(\d+)\/(\d+) (\d+)$/.exec(status);
      if (!m) throw new Error(`unexpected snapshot status '${status}'`);
      const left = Number(m[1]) - Number(m[3]);
      if (total < 0) total = Math.max(left, 1);
      progress(bar(1 - left / total));
      if (left <= 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    progress(bar(1) + '\n');
    await registry.engine.flushAll();
    if (!options.quiet) process.stdout.write(`merged ${options.cow} into ${options.origin}\n`);
  } finally {
    await registry.close();
  }
}

function bar(fraction) {
  const width = 30, filled = Math.round(fraction * width);
  return `merging [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
}

async function withFile(path, flags, fn) {
  let f;
  try { f = await open(path, flags); } catch (e) { throw new Error(`${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`); }
  try {
    const st = await f.stat();
    return await fn(f, st.size);
  } finally {
    await f.close();
  }
}
