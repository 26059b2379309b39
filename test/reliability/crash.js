#!/usr/bin/env node
// The long crash run (docs/reliability.md): node test/reliability/crash.js [--cycles N] [--seed S]
// [--setup P|PO|P+PO|merge]... [--power-cut] [--loop-receive] [--origin-only] [--max-sectors N]. Kills `dmkit serve`
// N times per setup and checks every kill; with --power-cut the files are on a volatile disk whose
// power is cut after each kill (power-loss.test.js), with --loop-receive the server runs so, with
// --origin-only the snapshot setups write only the origin (its first writes by the receive threads).
import { parseArgs } from 'node:util';
import { runCrashCycles } from './lib/crash-run.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '50' },
    seed: { type: 'string', default: String(Date.now() % 1e9) },
    setup: { type: 'string', multiple: true, default: ['P', 'PO', 'P+PO', 'merge'] },
    quiet: { type: 'boolean', default: false },
    'power-cut': { type: 'boolean', default: false },
    'loop-receive': { type: 'boolean', default: false },
    'origin-only': { type: 'boolean', default: false },
    'max-sectors': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(`usage: node test/reliability/crash.js [--cycles N] [--seed S] [--setup P|PO|P+PO|merge]...
                                   [--power-cut] [--loop-receive] [--origin-only] [--max-sectors N] [--quiet]
Kills dmkit serve N times (50) per setup (all four by default) during random writes, and checks
what each kill left (docs/reliability.md, "Long runs"). --power-cut: the files are on a FUSE disk
with a volatile cache whose power is cut after each kill; --loop-receive: the server reads the
requests on its event loop; --origin-only: only the origin is written (its first writes are the
receive threads'); --max-sectors: the largest write (8 with --origin-only, else 64; from 128 on,
the receive threads splice payloads from the socket into the files).`);
  process.exit(0);
}
const seed = Number(values.seed);
const maxSectors = values['max-sectors'] === undefined ? undefined : Number(values['max-sectors']);
if (maxSectors !== undefined && !(Number.isInteger(maxSectors) && maxSectors >= 1 && maxSectors <= 4096)) {
  console.error(`crash.js: --max-sectors: a whole number of sectors from 1 to 4096, not '${values['max-sectors']}'`);
  process.exit(2);
}
let kills = 0;
for (const [i, setup] of values.setup.entries()) {
  const report = await runCrashCycles({
    setup: /** @type {any} */ (setup), cycles: Number(values.cycles), seed: seed + i,
    powerCut: values['power-cut'], serveArgs: values['loop-receive'] ? ['--loop-receive'] : [], originOnly: values['origin-only'], maxSectors,
    log: values.quiet ? undefined : (l) => console.log(l),
  });
  kills += report.kills;
  console.log(JSON.stringify(report));
}
console.log(`${kills} kill points${values['power-cut'] ? ' with power cuts' : ''} survived (seed ${seed})`);
