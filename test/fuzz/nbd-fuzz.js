#!/usr/bin/env node
// The long protocol fuzz run (docs/reliability.md):
//   node test/fuzz/nbd-fuzz.js [--seconds N] [--seed S] [--parallel P] [--save]
// --save adds every case that made the server answer in a new way to test/fuzz/corpus/nbd/.
import { parseArgs } from 'node:util';
import { fuzzServer } from './lib/nbd-fuzzer.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '600' },
    seed: { type: 'string', default: String(Date.now() % 1e9) },
    parallel: { type: 'string', default: '4' },
    save: { type: 'boolean', default: false },
  },
});
const report = await fuzzServer({
  seconds: Number(values.seconds), seed: Number(values.seed), parallel: Number(values.parallel), save: values.save,
});
console.log(JSON.stringify(report, null, 1));
if (report.failures.length) {
  console.error(`FAILED (seed ${values.seed}):\n${report.failures.join('\n')}`);
  process.exit(1);
}
