#!/usr/bin/env node
// npm run bench -- <name>: runs one benchmark (or all with no name) and prints its figures.
const BENCHES = {
  core: () => import('./core.js'),
  nbd: () => import('./nbd.js'),
  browser: () => import('./browser.js'),
  vm: () => import('./vm.js'),
  snapshot: () => import('./snapshot.js'),
};

const names = process.argv.slice(2);
const unknown = names.filter((n) => !(n in BENCHES));
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}
for (const name of names.length ? names : Object.keys(BENCHES)) {
  const mod = await BENCHES[name]();
  await mod.run();
}
