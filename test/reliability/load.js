#!/usr/bin/env node
// The load run (docs/reliability.md): node test/reliability/load.js [--seconds N] [--clients C] [--depth D]
// Prints throughput, latency percentiles and the server's memory as JSON.
import { parseArgs } from 'node:util';
import { runLoad } from './lib/load-run.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    clients: { type: 'string', default: '64' },
    depth: { type: 'string', default: '32' },
  },
});
const report = await runLoad({ seconds: Number(values.seconds), clients: Number(values.clients), depth: Number(values.depth) });
console.log(JSON.stringify(report, null, 1));
if (report.errors || report.lost || report.mismatches.length || !report.verifiedAtEnd) process.exit(1);
