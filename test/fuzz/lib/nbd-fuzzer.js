// @ts-check
// The NBD protocol fuzzer: a real `dmkit serve` gets generated and mutated client streams
// (nbd-cases.js) on several connections at once for a bounded time, while a second client does
// verified I/O on an export of its own the whole time and fresh connections keep checking that
// the server answers. The server must never crash or hang a healthy connection, its memory and
// descriptors must stay bounded, and the verifier must see correct data throughout.
//
// Feedback: what the server answered (option reply types, error numbers, structured and extended reply types,
// whether it closed) is a case's signature; a case with a new signature joins the corpus, and
// `save` writes such cases to the corpus folder so later runs start from them.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, openSync, ftruncateSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startServer, tempDir } from '../../nbd/helpers.js';
import { NbdClient } from '../../reliability/lib/nbd-client.js';
import { View } from '../../reliability/lib/history.js';
import { Workload, rng } from '../../reliability/lib/workload.js';
import { sectorsOf } from '../../reliability/lib/pattern.js';
import { makePki } from '../../reliability/lib/pki.js';
import { generate, mutate } from './nbd-cases.js';

export const CORPUS = join(import.meta.dirname, '..', 'corpus', 'nbd');
const MiB = 1 << 20;
const DISK_BYTES = 16 * MiB;

const OPTION_REPLY_MAGIC = Buffer.from([0, 3, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9]);
const SIMPLE = Buffer.from([0x67, 0x44, 0x66, 0x98]);
const STRUCTURED = Buffer.from([0x66, 0x8e, 0x33, 0xef]);
const EXTENDED = Buffer.from([0x6e, 0x8a, 0x27, 0x8c]);

/** What the server answered, as a set of tokens (see the top of the file). @param {Buffer} out */
export function signature(out, closedByServer) {
  const tokens = new Set();
  let at = 18;
  for (;;) {
    const i = out.indexOf(OPTION_REPLY_MAGIC, at);
    if (i < 0 || i + 20 > out.length) break;
    const opt = out.readUInt32BE(i + 8);
    tokens.add(`opt ${opt > 11 ? 'other' : opt}:${out.readUInt32BE(i + 12).toString(16)}`);
    at = i + 20;
  }
  for (at = 18; ;) {
    const i = out.indexOf(SIMPLE, at);
    if (i < 0 || i + 16 > out.length) break;
    tokens.add(`simple:${out.readUInt32BE(i + 4)}`);
    at = i + 4;
  }
  // Reply chunks: type, flags, and an error chunk's error (after the 20- or 32-byte header).
  for (const [kind, magic, header] of /** @type {const} */ ([['structured', STRUCTURED, 20], ['extended', EXTENDED, 32]])) {
    for (at = 18; ;) {
      const i = out.indexOf(magic, at);
      if (i < 0 || i + header > out.length) break;
      const type = out.readUInt16BE(i + 6);
      tokens.add(`${kind}:${type}:${out.readUInt16BE(i + 4)}${type & 0x8000 && i + header + 4 <= out.length ? `:${out.readUInt32BE(i + header)}` : ''}`);
      at = i + 4;
    }
  }
  tokens.add(closedByServer ? 'closed' : 'open');
  return [...tokens].sort().join(' ');
}

/**
 * Opens a connection inside TLS: fixed newstyle flags, NBD_OPT_STARTTLS, its ACK, the TLS
 * handshake. Resolves with the TLS socket, or null if the server would not.
 * @param {string} socket @param {Buffer} ca
 * @returns {Promise<import('node:stream').Duplex | null>}
 */
function connectTls(socket, ca) {
  return new Promise((resolve) => {
    const raw = net.connect(socket);
    let got = Buffer.alloc(0);
    const fail = () => { raw.destroy(); resolve(null); };
    raw.on('error', fail);
    raw.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length === 18) {
        const h = Buffer.alloc(20);
        h.writeUInt32BE(3, 0); // FIXED_NEWSTYLE | NO_ZEROES
        h.write('IHAVEOPT', 4);
        h.writeUInt32BE(5, 12); // NBD_OPT_STARTTLS, no data
        raw.write(h);
      } else if (got.length === 18 + 20) {
        if (got.readUInt32BE(18 + 12) !== 1) { fail(); return; } // not an ACK
        raw.removeAllListeners('data');
        raw.off('error', fail);
        const s = tls.connect({ socket: raw, ca, servername: 'localhost' }, () => resolve(s));
        s.once('error', () => { s.destroy(); resolve(null); });
      } else if (got.length > 38) fail();
    });
  });
}

/**
 * Sends one case on a fresh connection, in random pieces, reading everything the server says,
 * until the server closes or stays quiet for `idleMs`. Resolves with the case's signature.
 * With `ca`, the case runs inside TLS (its client flags are left out: haggling starts over after
 * STARTTLS without them).
 * @param {string} socket @param {Buffer} bytes @param {() => number} r @param {Buffer} [ca]
 */
export async function runCase(socket, bytes, r, idleMs = 120, ca) {
  let s;
  if (ca) {
    s = await connectTls(socket, ca);
    if (!s) return 'tls refused';
    bytes = bytes.subarray(4);
  }
  return new Promise((resolve) => {
    s ??= net.connect(socket);
    const tlsPrefix = ca ? Buffer.alloc(18) : Buffer.alloc(0); // signature() skips a greeting
    const got = [];
    let size = 0;
    let closed = false;
    let idle = /** @type {NodeJS.Timeout | undefined} */ (undefined);
    const finish = () => {
      clearTimeout(idle);
      s.destroy();
      resolve((ca ? 'tls ' : '') + signature(Buffer.concat([tlsPrefix, ...got]), closed));
    };
    const quiet = () => { clearTimeout(idle); idle = setTimeout(finish, idleMs); };
    s.on('data', (d) => { if (size < 4 * MiB) got.push(d.subarray(0, 4 * MiB - size)); size += d.length; quiet(); });
    s.on('end', () => { closed = true; finish(); });
    s.on('error', () => { closed = true; finish(); });
    s.on('close', () => { closed = true; finish(); });
    const send = async () => {
      // Pieces: all at once, a few chunks, or (small cases) a byte at a time.
      const pieces = bytes.length < 200 && r() < 0.2 ? bytes.length : 1 + Math.floor(r() * 4);
      const step = Math.max(1, Math.ceil(bytes.length / pieces));
      for (let at = 0; at < bytes.length && !s.destroyed; at += step) {
        s.write(bytes.subarray(at, at + step));
        if (pieces > 1) await new Promise((res) => setTimeout(res, r() < 0.5 ? 0 : 2));
      }
      quiet();
    };
    if (ca) send();
    else s.once('connect', send);
  });
}

/** The server's resident memory and open descriptors, from /proc. */
export function processUsage(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  return { rss, fds };
}

function sparse(path, bytes) {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
}

/** @param {string} dir */
export function loadCorpus(dir = CORPUS) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.bin')).sort().map((f) => readFileSync(join(dir, f)));
}

/**
 * @typedef {object} FuzzOptions
 * @property {number} seconds
 * @property {number} seed
 * @property {number} [parallel]     fuzz connections at once (default 4)
 * @property {boolean} [save]        write cases with new signatures to the corpus folder
 * @property {boolean} [replay]      send every corpus case once first (default true)
 * @property {number} [hangMs]       a healthy request slower than this is a hang (default 10 s)
 * @property {(line: string) => void} [log]
 */

/** @param {FuzzOptions} o */
export async function fuzzServer(o) {
  const r = rng(o.seed);
  const log = o.log ?? (() => {});
  const hangMs = o.hangMs ?? 10_000;
  const dir = tempDir('dmkit-fuzz-');
  const sectors = DISK_BYTES / 512;
  for (const f of ['disk.img', 'base.img']) sparse(join(dir, f), DISK_BYTES);
  sparse(join(dir, 'snap.cow'), 8 * MiB);
  // The verifier's image starts as write 0's pattern everywhere (see pattern.js).
  writeFileSync(join(dir, 'verify.img'), sectorsOf(0, sectors, 0));
  // TLS is offered (plain clients are served too): STARTTLS in a case starts a handshake that
  // the garbage after it breaks, and some cases run whole inside a real TLS session.
  const pki = makePki(dir);
  const srv = await startServer([
    '--tls=on', '--tls-certificates', pki.certs,
    '--device', 'disk', `0 ${sectors} linear ${join(dir, 'disk.img')} 0`,
    '--device', 'base', `0 ${sectors} snapshot-origin ${join(dir, 'base.img')}`,
    '--device', 'snap', `0 ${sectors} snapshot ${join(dir, 'base.img')} ${join(dir, 'snap.cow')} P 8`,
    '--device', 'verify', `0 ${sectors} linear ${join(dir, 'verify.img')} 0`,
  ], { dir });
  const target = { names: ['disk', 'base', 'snap'], size: DISK_BYTES };
  const ca = readFileSync(join(pki.certs, 'ca-cert.pem'));
  const corpus = loadCorpus();
  // Every corpus case is sent once as it is first (regressions), then the fuzzing proper.
  const replay = o.replay === false ? [] : [...corpus];
  const seen = new Set();
  const failures = /** @type {string[]} */ ([]);
  const report = { seconds: o.seconds, seed: o.seed, cases: 0, generated: 0, mutated: 0, corpusStart: corpus.length, replayed: 0, inTls: 0, newSignatures: 0, saved: 0,
    rssStart: 0, rssPeak: 0, rssEnd: 0, fdsStart: 0, fdsEnd: 0, verifier: /** @type {any} */ (null), verifierMaxMs: 0, probes: 0, probeMaxMs: 0, failures };

  const verifier = await NbdClient.connect({ socket: srv.socket, exportName: 'verify' });
  const view = new View('verify', sectors, 0);
  const load = new Workload(verifier, view, { depth: 4, maxSectors: 256, readShare: 0.5, random: rng(o.seed ^ 0x5eed) });
  const usage0 = processUsage(srv.proc.pid);
  report.rssStart = usage0.rss;
  report.fdsStart = usage0.fds;
  report.rssPeak = usage0.rss;
  load.start();

  const sampler = setInterval(() => {
    try { report.rssPeak = Math.max(report.rssPeak, processUsage(srv.proc.pid).rss); } catch { /* exited: caught below */ }
  }, 200);
  const deadline = Date.now() + o.seconds * 1000;
  /** Cases on the wire, saved if the server dies under them. */
  const inFlight = new Set();

  const worker = async () => {
    while (Date.now() < deadline && srv.proc.exitCode === null && srv.proc.signalCode === null) {
      let bytes;
      if (replay.length > 0) {
        bytes = /** @type {Buffer} */ (replay.shift());
        report.replayed++;
      } else if (corpus.length > 0 && r() < 0.5) {
        bytes = mutate(r, corpus[Math.floor(r() * corpus.length)], corpus[Math.floor(r() * corpus.length)]);
        report.mutated++;
      } else {
        bytes = generate(r, target);
        report.generated++;
      }
      inFlight.add(bytes);
      const inTls = r() < 0.15;
      if (inTls) report.inTls++;
      const sig = await runCase(srv.socket, bytes, r, 120, inTls ? ca : undefined);
      inFlight.delete(bytes);
      report.cases++;
      if (!seen.has(sig)) {
        seen.add(sig);
        report.newSignatures++;
        corpus.push(bytes);
        // Big cases (long payloads) are not kept: the corpus lives in the repository.
        if (o.save && bytes.length <= 32 * 1024) { saveCase(bytes, 'seed'); report.saved++; }
      }
    }
  };

  // Fresh connections throughout: the server must keep answering new clients quickly.
  const prober = async () => {
    while (Date.now() < deadline && srv.proc.exitCode === null) {
      const t0 = performance.now();
      try {
        const c = await withTimeout(NbdClient.connect({ socket: srv.socket, exportName: 'disk' }), hangMs, 'a new connection');
        await withTimeout(c.read(0, 4096), hangMs, 'a read on a new connection');
        c.destroy();
      } catch (e) {
        failures.push(`probe: ${e instanceof Error ? e.message : e}`);
        return;
      }
      report.probes++;
      report.probeMaxMs = Math.max(report.probeMaxMs, performance.now() - t0);
      await new Promise((res) => setTimeout(res, 500));
    }
  };

  await Promise.all([...Array.from({ length: o.parallel ?? 4 }, worker), prober()]);
  clearInterval(sampler);
  const alive = srv.proc.exitCode === null && srv.proc.signalCode === null;
  if (!alive) {
    failures.push(`dmkit serve died (${srv.proc.exitCode ?? srv.proc.signalCode}):\n${srv.stderr.slice(-3000)}`);
    for (const b of inFlight) saveCase(b, 'crash');
  }
  await load.stop();
  report.verifier = load.stats;
  report.verifierMaxMs = Math.round(load.latencies.reduce((m, x) => (x > m ? x : m), 0));
  if (load.mismatches.length) failures.push(`verifier read wrong data:\n  ${load.mismatches.join('\n  ')}`);
  if (load.errorReplies.length) failures.push(`verifier got error replies:\n  ${load.errorReplies.join('\n  ')}`);
  if (load.stats.lost) failures.push(`verifier lost ${load.stats.lost} request(s): its connection died`);
  if (report.verifierMaxMs > hangMs) failures.push(`a verifier request took ${report.verifierMaxMs} ms`);
  if (alive) {
    // Every fuzz connection is gone: descriptors must come back to where they were.
    const t0 = Date.now();
    for (;;) {
      const u = processUsage(srv.proc.pid);
      report.fdsEnd = u.fds;
      report.rssEnd = u.rss;
      if (u.fds <= report.fdsStart + 1 || Date.now() - t0 > 5000) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    if (report.fdsEnd > report.fdsStart + 1) failures.push(`descriptors leaked: ${report.fdsStart} at the start, ${report.fdsEnd} once every fuzz connection was gone`);
    await verifier.close().catch((e) => failures.push(`verifier close: ${e.message}`));
  }
  const stop = await srv.stop();
  if (alive && stop.code !== 0) failures.push(`dmkit serve exited with ${stop.code} on SIGTERM:\n${stop.stderr.slice(-2000)}`);
  log(JSON.stringify({ ...report, failures: failures.length }));
  return report;
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms); })]).finally(() => clearTimeout(t));
}

/** Writes a case into the corpus folder under its hash. */
function saveCase(bytes, kind) {
  mkdirSync(CORPUS, { recursive: true });
  const name = `${kind}-${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}.bin`;
  writeFileSync(join(CORPUS, name), bytes);
}
