// npm run bench -- vm: the kmod-port's targets against Linux's own inside the qemu guest, with
// fio on ram disks (test/vm/suites/bench.sh). Under software emulation the absolute figures mean
// little; the ratio dmkit / Linux, measured in the same boot, is the figure (target: >= 0.90).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export async function run() {
  const work = mkdtempSync(join(tmpdir(), 'dmkit-vm-bench-'));
  try {
    const r = spawnSync('bash', [join(root, 'test', 'vm', 'run.sh'), 'bench'], {
      stdio: 'inherit', env: { ...process.env, DMKIT_VM_WORK: work },
    });
    const file = join(work, 'bench', 'bench.txt');
    if (r.status !== 0) {
      console.error(`bench vm: the guest run failed (status ${r.status}); nothing to report`);
      process.exitCode = 1;
      return;
    }
    if (!existsSync(file)) {
      console.error('bench vm: skipped, nothing measured (the reason is above: the dm-dmkit module is not built yet?)');
      return;
    }
    report(readFileSync(file, 'utf8'));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** "KIND TARGET WORKLOAD IOPS BYTES_PER_S" lines -> best of the rounds per kind, then ratios. */
function report(text) {
  const best = new Map();
  for (const line of text.split('\n')) {
    const [kind, target, workload, iops, bw] = line.trim().split(/\s+/);
    if (!bw) continue;
    const key = `${target} ${workload}`;
    const row = best.get(key) ?? { target, workload };
    const prev = row[kind];
    if (!prev || Number(iops) > prev.iops) row[kind] = { iops: Number(iops), bw: Number(bw) };
    best.set(key, row);
  }
  console.log('\nfio in the qemu guest (TCG), ram disks, QD16, best of 2 rounds');
  console.log('| target | workload | Linux | dmkit | dmkit / Linux |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const row of best.values()) {
    if (!row.linux || !row.dmkit) continue;
    const big = row.workload.endsWith('1m');
    const fmt = (m) => (big ? `${(m.bw / 1048576).toFixed(0)} MiB/s` : `${m.iops} IOPS`);
    const ratio = big ? row.dmkit.bw / row.linux.bw : row.dmkit.iops / row.linux.iops;
    console.log(`| ${row.target} | ${row.workload} | ${fmt(row.linux)} | ${fmt(row.dmkit)} | ${ratio.toFixed(2)} |`);
  }
}
