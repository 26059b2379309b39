// COW loader fuzzing: real persistent COW images (written by the core with exceptions in several
// metadata areas) are corrupted (header fields, exception entries pointing anywhere, flipped
// bytes, zeroed ranges, a shortened device) and loaded by the core's snapshot target, and read by
// the independent reader (host-nbd/snapshot/cow-reader.js). A COW device is either refused with
// a message, leaving no table behind, or loaded whole: every exception the image holds is in
// effect (reads of its chunk come from the COW device), every other chunk reads from the origin,
// the usage agrees with the reader's, and no command leaves its backing device.
import { describe, it, expect } from 'vitest';
import { newHarness } from '../core/harness.js';
import { readCow } from '../../host-nbd/snapshot/cow-reader.js';
import { rng } from '../reliability/lib/workload.js';
import { checkCommandsInRange, loadOrRefuse } from './lib/core-promises.js';

const SECONDS = Number(process.env.DMKIT_FUZZ_SECONDS ?? 45) / 3;
const SEED = Number(process.env.DMKIT_FUZZ_SEED ?? Date.now() % 1e9);
const ORIGIN_SECTORS = 512;
const COW_SECTORS = 256;
const int = (r, n) => Math.floor(r() * n);
const pick = (r, xs) => xs[int(r, xs.length)];

/** A core whose commands are checked against their backing device (the core promises that). */
async function checkedHost() {
  const h = await newHarness();
  checkCommandsInRange(h);
  return h;
}

/** A valid COW image with exceptions in several areas, and its origin. */
async function makeImage(r, chunk) {
  const h = await checkedHost();
  h.disk('o', ORIGIN_SECTORS);
  h.disk('c', COW_SECTORS);
  const origin = h.disks.get(0);
  for (let i = 0; i < origin.length; i++) origin[i] = (i * 7 + (i >> 9)) & 255;
  h.device('org', `0 ${ORIGIN_SECTORS} snapshot-origin o`);
  const snap = h.device('snap', `0 ${ORIGIN_SECTORS} snapshot o c P ${chunk}`);
  const org = h.core.findDevice('org');
  for (let i = 0; i < 60; i++) {
    const sector = int(r, ORIGIN_SECTORS);
    h.write(r() < 0.5 ? org : snap, sector, new Uint8Array(512).fill(1 + int(r, 250)));
  }
  return { cow: Uint8Array.from(h.disks.get(1)), origin: Uint8Array.from(origin) };
}

/** One corruption of a COW image (returns a new array, maybe shorter). */
function corrupt(r, image, chunk) {
  let b = Uint8Array.from(image);
  const dv = () => new DataView(b.buffer);
  const chunkBytes = chunk * 512;
  const perArea = chunkBytes / 16;
  for (let n = 1 + int(r, 2); n > 0; n--) {
    switch (int(r, 6)) {
      case 0: // a header field
        if (b.length >= 16) dv().setUint32(4 * int(r, 4), pick(r, [0, 1, 2, 3, 0xffffffff, 0x70416e53, 8, 16, 7, 1 << 30, int(r, 2 ** 32)]), true);
        break;
      case 1: case 2: { // an exception entry of one of the first areas
        const area = int(r, 3);
        const at = (1 + (perArea + 1) * area) * chunkBytes + 16 * int(r, Math.min(perArea, 40));
        if (at + 16 > b.length) break;
        const value = pick(r, [0n, 1n, 2n, BigInt(COW_SECTORS / chunk), BigInt(COW_SECTORS / chunk - 1), BigInt(perArea + 1), 2n ** 32n, 2n ** 64n - 1n, BigInt(int(r, 600))]);
        dv().setBigUint64(at + (r() < 0.5 ? 0 : 8), value, true);
        break;
      }
      case 3: for (let k = 1 + int(r, 8); k > 0; k--) b[int(r, Math.min(b.length, 8 * chunkBytes))] ^= 1 << int(r, 8); break;
      case 4: { const at = int(r, b.length); b.fill(0, at, at + 512 * (1 + int(r, 4))); break; }
      default: b = b.slice(0, 512 * int(r, b.length / 512 + 1)); // a shorter device
    }
  }
  return b;
}

/**
 * Loads `cow` under a snapshot and checks it against the reader. Returns 'refused', 'loaded',
 * 'invalid' or 'new' (blank header); throws on any broken promise.
 */
async function check(h, n, cow, origin) {
  const core = h.core;
  const o = h.disk(`o${n}`, ORIGIN_SECTORS);
  h.disks.get(o).set(origin);
  const c = h.disk(`c${n}`, Math.max(1, cow.length / 512));
  if (cow.length) h.disks.get(c).set(cow);
  const reader = await readCow(async (pos, len) => cow.slice(pos, pos + len), cow.length).then((info) => ({ info }), (e) => ({ error: e.message }));
  const id = core.createDevice(`s${n}`);
  let outcome;
  try {
    if (loadOrRefuse(h, id, `0 ${ORIGIN_SECTORS} snapshot o${n} c${n} P 8`) === 'refused') return 'refused';
    core.resume(id);
    const status = core.status(id).trim().split(' ').slice(3).join(' ');
    if (status === 'Invalid') {
      outcome = 'invalid';
      const read = h.read(id, 0, 1);
      if (read.status === 0) throw new Error('an invalid snapshot served a read');
    } else if ('error' in reader && /header is blank/.test(reader.error)) {
      // A zeroed header means a new snapshot (the kernel's rule): nothing of the old one counts.
      outcome = 'new';
      for (let sector = 0; sector < ORIGIN_SECTORS; sector += 64) {
        const got = h.read(id, sector, 64);
        if (got.status !== 0 || Buffer.compare(Buffer.from(got.data), Buffer.from(origin.subarray(sector * 512, (sector + 64) * 512))) !== 0) {
          throw new Error(`a new snapshot over a blank header does not read as the origin at sector ${sector}`);
        }
      }
    } else {
      if ('error' in reader) throw new Error(`the core loaded a COW device the reader refuses (${reader.error}); status ${status}`);
      const info = reader.info;
      if (!info.valid) throw new Error(`the core loaded an invalid COW device as valid (status ${status})`);
      const usage = `${info.usage.allocated}/${info.usage.total} ${info.usage.metadata}`;
      if (status !== usage) throw new Error(`status '${status}', the reader says '${usage}'`);
      // Every exception is in effect, every other chunk reads from the origin.
      const chunkBytes = info.chunkSize * 512;
      const originChunks = (ORIGIN_SECTORS * 512) / chunkBytes;
      const map = new Map();
      for (const e of info.exceptions) map.set(e.old, e.new);
      for (let chunk = 0; chunk < originChunks; chunk++) {
        const got = h.read(id, chunk * info.chunkSize, info.chunkSize);
        const from = map.get(chunk);
        const want = from === undefined ? origin.subarray(chunk * chunkBytes, (chunk + 1) * chunkBytes) : cow.subarray(from * chunkBytes, (from + 1) * chunkBytes);
        if (got.status !== 0) throw new Error(`reading chunk ${chunk} failed with errno ${got.status}`);
        if (Buffer.compare(Buffer.from(got.data), Buffer.from(want)) !== 0) {
          throw new Error(`chunk ${chunk} reads wrong (${from === undefined ? 'origin' : `COW chunk ${from}`} expected): a COW device half-loaded`);
        }
      }
      outcome = 'loaded';
    }
    return outcome;
  } finally {
    h.settle();
    core.removeDevice(id);
    core.removeBacking(o);
    core.removeBacking(c);
  }
}

describe('COW loader fuzzing', () => {
  it(`corrupted COW devices for ${SECONDS} s (seed ${SEED}): refused with a message or loaded whole`, async () => {
    const r = rng(SEED);
    const counts = { refused: 0, loaded: 0, invalid: 0, new: 0, cases: 0 };
    const deadline = Date.now() + SECONDS * 1000;
    let h = await checkedHost();
    while (Date.now() < deadline) {
      const chunk = pick(r, [1, 2, 4]);
      const { cow, origin } = await makeImage(r, chunk);
      for (let k = 0; k < 40 && Date.now() < deadline; k++) {
        const bad = k === 0 ? cow : corrupt(r, cow, chunk);
        let outcome;
        try {
          outcome = await check(h, counts.cases, bad, origin);
        } catch (e) {
          throw new Error(`case ${counts.cases} (chunk ${chunk}, seed ${SEED}): ${e.message}\nheader ${Buffer.from(bad.subarray(0, 16)).toString('hex')}`);
        }
        if (k === 0) expect(outcome, 'the uncorrupted image loads').toBe('loaded');
        counts[outcome]++;
        counts.cases++;
        if (counts.cases % 400 === 0) h = await checkedHost();
      }
    }
    console.log(`cow ${JSON.stringify(counts)}`);
    expect(counts.refused).toBeGreaterThan(0);
    expect(counts.loaded).toBeGreaterThan(0);
  }, (SECONDS + 60) * 1000);
});

describe('COW devices the fuzzer found, kept as regressions', () => {
  it('an exception past the end of the COW device, or on a metadata chunk, is refused by name', async () => {
    const { cow, origin } = await makeImage(rng(1), 1);
    const cases = [[9999n, /exception 0: COW chunk 9999 lies past the end of the COW device \(256 chunks\)/], [34n, /exception 0: COW chunk 34 is a metadata area/]];
    for (const [chunk, message] of cases) {
      const bad = Uint8Array.from(cow);
      new DataView(bad.buffer).setBigUint64(512 + 8, chunk, true); // area 0 (chunk 1), entry 0: new_chunk
      const h = await checkedHost();
      h.disks.get(h.disk('o', ORIGIN_SECTORS)).set(origin);
      h.disks.get(h.disk('c', COW_SECTORS)).set(bad);
      const id = h.core.createDevice('s');
      expect(() => h.load(id, `0 ${ORIGIN_SECTORS} snapshot o c P 1`)).toThrow(message);
      expect(h.core.info(id).hasInactive).toBe(false);
    }
  });
});
