// @ts-check
// What the thread-copy tests share, for an origin `base` with one snapshot `snap` (chunk 8): the
// snapshot's status, a check that it holds the original, and a load: two fio writers over
// overlapping halves, a reader checking the snapshot, and the origin suspended and resumed every
// 0.7 s, all at once.
import { expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { ok, CLIENT_ENV } from './helpers.js';

const CHUNK = 4096;

/** The snapshot's status line: [sectors allocated, total sectors, metadata sectors], or 'Invalid'. */
export async function snapshotUsage(srv) {
  const out = (await srv.ctl('status', 'snap')).stdout.trim();
  const m = /snapshot (\d+)\/(\d+) (\d+)$/.exec(out);
  if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
  if (/snapshot Invalid$/.test(out)) return 'Invalid';
  throw new Error(`unexpected status: ${out}`);
}

/** Python lines for nbdsh: asserts the snapshot holds the original bytes in the chunks listed. */
export const keepsOriginal = (orig, chunks) => [
  `orig = open(${JSON.stringify(orig)}, "rb").read()`,
  `for c in ${JSON.stringify(chunks)}:`,
  `    assert h.pread(${CHUNK}, c * ${CHUNK}) == orig[c * ${CHUNK}:(c + 1) * ${CHUNK}], f"chunk {c} changed"`,
];

/** Python lines for nbdsh: asserts the snapshot reads as the original over all `size` bytes. */
export const wholeOriginal = (orig, size) => [
  `orig = open(${JSON.stringify(orig)}, "rb").read()`,
  `for at in range(0, ${size}, 4 << 20):`,
  `    assert h.pread(4 << 20, at) == orig[at:at + (4 << 20)], f"the snapshot changed near {at}"`,
];

/**
 * Runs the load for `seconds` against devices `base` and `snap` of srv; fails if the reader saw
 * a changed chunk or a suspend failed.
 * @param {{uri: (name: string) => string, ctl: (verb: string, ...rest: string[]) => Promise<{code: number, stdout: string}>}} srv
 * @param {{orig: string, size: number, seconds: number}} o orig: a copy of the origin as it was
 */
export async function writersReaderAndSuspends(srv, { orig, size, seconds }) {
  const fio = (offset, seed) => ok('fio', ['--name=w', '--ioengine=nbd', `--uri=${srv.uri('base')}`, '--iodepth=16', '--rw=randwrite',
    '--bs=4k', `--offset=${offset}`, `--size=${size / 2}`, '--time_based', `--runtime=${seconds}`, `--randseed=${seed}`,
    '--output-format=terse'], { env: CLIENT_ENV, timeout: 60_000 });
  const reader = ok('nbdsh', ['-u', srv.uri('snap'), '-c', [
    `orig = open(${JSON.stringify(orig)}, "rb").read()`,
    `import random, time`,
    `t, wrong = time.time(), []`,
    `while time.time() - t < ${seconds}:`,
    `    c = random.randrange(0, ${size / CHUNK})`,
    `    if h.pread(${CHUNK}, c * ${CHUNK}) != orig[c * ${CHUNK}:(c + 1) * ${CHUNK}]: wrong.append(c)`,
    `assert not wrong, f"the snapshot changed in chunks {wrong[:10]}"`,
  ].join('\n')], { env: CLIENT_ENV, timeout: 120_000 });
  const suspends = (async () => {
    for (let i = 0; i < seconds; i++) {
      await new Promise((r) => setTimeout(r, 700));
      expect((await srv.ctl('suspend', 'base')).code).toBe(0);
      expect((await srv.ctl('resume', 'base')).code).toBe(0);
    }
  })();
  await Promise.all([fio(0, 1), fio(size / 4, 2), reader, suspends]);
}

/** How many chunks of `now` differ from `before` (files of size bytes). */
export function changedChunks(now, before, size) {
  const a = readFileSync(now), b = readFileSync(before);
  let changed = 0;
  for (let at = 0; at < size; at += CHUNK) if (a.compare(b, at, at + CHUNK, at, at + CHUNK) !== 0) changed++;
  return changed;
}
