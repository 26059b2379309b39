#!/usr/bin/env node
// npm run bench -- <name>: runs one benchmark (or all with no name) and prints its figures.
const BENCHES = {
  core: () => import('./core.js'),
  nbd: () => import('./nbd.js'),
  browser: () => import('./browser.js'),
  vm: () => import('./vm.js'),
  snapshot: () => import('./snapshot.js'),
};

const USAGE = `usage: npm run bench -- [name...]   (every benchmark with no name)
benchmarks: ${Object.keys(BENCHES).join(', ')}. Each prints its figures and their ratios against a peer
measured in the same run (docs/performance.md says what each measures). Settings, as environment variables:
  BENCH_ROUNDS=N                nbd, snapshot: rounds (5); nbd's random tests only
  BENCH_SEQ_ROUNDS=N            nbd: rounds of the sequential tests (15)
  BENCH_ONLY=REGEX              nbd: only the tests whose line matches (e.g. 'seq write')
  BENCH_SECONDS=N               nbd: seconds per random test (8); core: seconds per figure (1.5)
  BENCH_ROUND_MS, BENCH_WORKING_SET_MIB   core (bench/core.js); BENCH_PASSES browser (5)
  BENCH_DMKIT_ARGS='...'        nbd: more arguments for dmkit serve (e.g. '--loop-receive')
  BENCH_SNAPSHOT_WRITES=N       snapshot: writes per pass (8192)
  BENCH_SNAPSHOT_ORIGIN_GIB=N   snapshot: the sparse origin's size in GiB (256)`;

const names = process.argv.slice(2);
if (names.includes('--help') || names.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
const unknown = names.filter((n) => !(n in BENCHES));
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(', ')}\n${USAGE}`);
  process.exit(2);
}
for (const name of names.length ? names : Object.keys(BENCHES)) {
  const mod = await BENCHES[name]();
  await mod.run();
}
