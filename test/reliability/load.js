#!/usr/bin/env node
// The load run (docs/reliability.md): node test/reliability/load.js [--seconds N] [--clients C] [--depth D] [--peer]
// Prints throughput, latency percentiles and the server's memory as JSON; --peer runs the same
// load against nbdkit's file plugin afterwards, for scale.
import { parseArgs } from 'node:util';
import { runLoad } from './lib/load-run.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    clients: { type: 'string', default: '64' },
    depth: { type: 'string', default: '32' },
    peer: { type: 'boolean', default: false },
  },
});
const shape = { seconds: Number(values.seconds), clients: Number(values.clients), depth: Number(values.depth) };
const report = await runLoad(shape);
console.log(JSON.stringify(report, null, 1));
if (values.peer) {
  const peer = await runLoad({ ...shape, peer: 'nbdkit' });
  console.log(JSON.stringify(peer, null, 1));
  console.log(`dmkit/nbdkit: requests per second ${(report.requestsPerSecond / peer.requestsPerSecond).toFixed(2)}x, p99 ${(report.p99Ms / peer.p99Ms).toFixed(2)}x`);
}
if (report.errors || report.lost || report.mismatches.length || !report.verifiedAtEnd) process.exit(1);
