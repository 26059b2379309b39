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
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(`usage: node test/fuzz/nbd-fuzz.js [--seconds N] [--seed S] [--parallel P] [--save]
Sends mutated NBD traffic to dmkit serve for N seconds (600) over P connections at once (4), and
fails on an answer the protocol does not allow, a crash, or a server that stops serving the others
(docs/reliability.md). --save adds every case that made the server answer in a new way to
test/fuzz/corpus/nbd/.`);
  process.exit(0);
}
const report = await fuzzServer({
  seconds: Number(values.seconds), seed: Number(values.seed), parallel: Number(values.parallel), save: values.save,
});
console.log(JSON.stringify(report, null, 1));
if (report.failures.length) {
  console.error(`FAILED (seed ${values.seed}):\n${report.failures.join('\n')}`);
  process.exit(1);
}
