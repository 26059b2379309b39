// @ts-check
// The load run: one `dmkit serve`, many clients with many requests in flight each, mixed
// verified reads, writes and flushes (workload.js) for a bounded time. Each client owns a
// region of the export, so every read can be checked against what that client last wrote.
// Reports throughput, latency percentiles and the server's memory; the caller judges.
// With peer 'nbdkit' the same load runs against nbdkit's file plugin on the same kind of image,
// for scale: what the client and the machine allow at that moment.
import { openSync, ftruncateSync, closeSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { startServer, tempDir } from '../../nbd/helpers.js';
import { NbdClient } from './nbd-client.js';
import { View } from './history.js';
import { Workload, readAll, rng } from './workload.js';
import { ZERO_ID } from './pattern.js';
import { processUsage } from '../../fuzz/lib/nbd-fuzzer.js';

/** nbdkit's file plugin on `img`, on a Unix socket, shaped like startServer's result. */
async function startNbdkit(dir, img) {
  const socket = join(dir, 'nbdkit.sock');
  const proc = spawn('nbdkit', ['--foreground', '--unix', socket, 'file', img], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const t0 = Date.now();
  while (!existsSync(socket)) {
    if (Date.now() - t0 > 10_000 || proc.exitCode !== null) throw new Error(`nbdkit did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  return { proc, socket, stop: async () => { proc.kill('SIGTERM'); await exited; } };
}

/**
 * @param {{clients: number, depth: number, seconds: number, regionMiB?: number, seed?: number, peer?: 'nbdkit'}} o
 */
export async function runLoad(o) {
  const regionMiB = o.regionMiB ?? 4;
  const regionSectors = regionMiB * 2048;
  const sectors = regionSectors * o.clients;
  const dir = tempDir('dmkit-load-');
  const img = join(dir, 'load.img');
  const fd = openSync(img, 'w');
  ftruncateSync(fd, sectors * 512);
  closeSync(fd);
  const srv = o.peer === 'nbdkit' ? await startNbdkit(dir, img) : await startServer(['--quiet', '--device', 'disk', `0 ${sectors} linear ${img} 0`], { dir });
  const report = {
    server: o.peer ?? 'dmkit', clients: o.clients, depth: o.depth, seconds: o.seconds, requests: 0, reads: 0, writes: 0, flushes: 0, bytes: 0,
    requestsPerSecond: 0, mbPerSecond: 0, p50Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0,
    errors: 0, lost: 0, mismatches: /** @type {string[]} */ ([]), errorReplies: /** @type {string[]} */ ([]),
    rssStartMiB: 0, rssPeakMiB: 0, rssEndMiB: 0, verifiedAtEnd: false,
  };
  try {
    const pid = /** @type {number} */ (srv.proc.pid);
    report.rssStartMiB = processUsage(pid).rss / 2 ** 20;
    let peak = report.rssStartMiB;
    const sampler = setInterval(() => { try { peak = Math.max(peak, processUsage(pid).rss / 2 ** 20); } catch { /* exited */ } }, 200);
    const clients = await Promise.all(Array.from({ length: o.clients }, () => NbdClient.connect({ socket: srv.socket, exportName: 'disk' })));
    const views = clients.map((_, i) => new View(`client ${i}`, regionSectors, ZERO_ID, i * regionSectors));
    const random = rng(o.seed ?? 1);
    const t0 = performance.now();
    const loads = clients.map((c, i) => new Workload(c, views[i], {
      depth: o.depth, maxSectors: 64, readShare: 0.5, flushShare: 0.002, random,
    }).start());
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    await Promise.all(loads.map((l) => l.stop()));
    const elapsed = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    report.rssPeakMiB = Math.round(peak);
    const latencies = [];
    for (const l of loads) {
      report.reads += l.stats.reads;
      report.writes += l.stats.writes;
      report.flushes += l.stats.flushes;
      report.bytes += l.stats.bytes;
      report.errors += l.stats.errors;
      report.lost += l.stats.lost;
      report.mismatches.push(...l.mismatches.slice(0, 5));
      report.errorReplies.push(...l.errorReplies.slice(0, 5));
      for (const x of l.latencies) latencies.push(x);
    }
    latencies.sort((a, b) => a - b);
    const pct = (p) => Number((latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0).toFixed(2));
    report.requests = latencies.length;
    report.requestsPerSecond = Math.round(report.requests / elapsed);
    report.mbPerSecond = Number((report.bytes / elapsed / 1e6).toFixed(1));
    report.p50Ms = pct(0.5);
    report.p99Ms = pct(0.99);
    report.p999Ms = pct(0.999);
    report.maxMs = pct(1);
    // Every region read back whole at the end: all acknowledged writes are there.
    const all = await readAll(clients[0], sectors * 512, 4 << 20);
    report.verifiedAtEnd = true;
    for (let i = 0; i < clients.length; i++) {
      const part = all.subarray(i * regionSectors * 512, (i + 1) * regionSectors * 512);
      const problems = views[i].check(part, i * regionSectors, 'acked', 3);
      if (problems.length) { report.verifiedAtEnd = false; report.mismatches.push(...problems); }
    }
    report.rssEndMiB = Math.round(processUsage(pid).rss / 2 ** 20);
    report.rssStartMiB = Math.round(report.rssStartMiB);
    await Promise.all(clients.map((c) => c.close()));
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}
