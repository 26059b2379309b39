// @ts-check
// The embedded default for `dmkit serve` with no arguments, in a data folder created on first
// start and reused after: a sparse 1 GiB image served as 'disk' through snapshot-origin, and a
// persistent snapshot of it, 'disk-snap', whose COW device is a sparse 256 MiB image. Writes to
// 'disk' copy the old chunks into the COW image first, so 'disk-snap' keeps the first-start view.
import { join } from 'node:path';
import { homedir } from 'node:os';

export const DEFAULT_IMAGE_BYTES = 2 ** 30;
export const DEFAULT_COW_BYTES = 2 ** 28;

export function defaultDataDir() {
  if (process.env.DMKIT_DATA) return process.env.DMKIT_DATA;
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'dmkit');
}

/** @param {string} dir */
export function defaultSetup(dir) {
  const image = join(dir, 'disk.img');
  const cow = join(dir, 'disk-snap.cow');
  const sectors = DEFAULT_IMAGE_BYTES / 512;
  return {
    images: [{ path: image, bytes: DEFAULT_IMAGE_BYTES }, { path: cow, bytes: DEFAULT_COW_BYTES }],
    devices: [
      { name: 'disk', table: `0 ${sectors} snapshot-origin ${image}\n` },
      { name: 'disk-snap', table: `0 ${sectors} snapshot ${image} ${cow} P 8\n` },
    ],
  };
}
