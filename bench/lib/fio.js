// @ts-check
// fio as the benchmark client, through its nbd engine (libnbd), so every server is measured by
// the same client.
//
// Use fio's own offset generator, not a replayed I/O log (read_iolog): with fio 3.33's nbd
// engine a replay ends by closing the connection with the last requests still in flight (they
// never reach the server, yet fio counts them as done), and nbdkit 1.32 may abort on the
// replies it can no longer send. With randrepeat (fio's default) every run of the same job
// writes the same offsets in the same order, which is what comparing servers needs.
import { capture } from './capture.js';

/**
 * Runs fio with `args` (one job) and returns that job's JSON report.
 * @param {string[]} args
 * @returns {Promise<any>}
 */
export async function fioJob(args) {
  const all = ['--output-format=json', ...args];
  const { code, stdout, stderr } = await capture('fio', all);
  if (code !== 0) throw new Error(`fio ${all.join(' ')} exited with ${code}:\n${stderr}${stdout.slice(0, 2000)}`);
  let job;
  try {
    // fio may print a note before the JSON object.
    job = JSON.parse(stdout.slice(stdout.indexOf('{'))).jobs[0];
  } catch {
    throw new Error(`fio printed no JSON report:\n${stdout.slice(0, 2000)}${stderr}`);
  }
  if (job.error) throw new Error(`fio ${all.join(' ')} reported error ${job.error}:\n${stderr}`);
  return job;
}

/**
 * Runs one fio job against an NBD URI and returns what it measured for `dir`.
 * @param {string} uri
 * @param {string[]} args the workload, e.g. ['--rw=randwrite', '--bs=4k', '--io_size=128m']
 * @param {{iodepth?: number, dir?: 'read' | 'write'}} [opts]
 * @returns {Promise<{iops: number, ios: number, seconds: number, bytesPerSecond: number}>}
 */
export async function runFio(uri, args, opts = {}) {
  const job = await fioJob(['--name=bench', '--ioengine=nbd', `--uri=${uri}`, `--iodepth=${opts.iodepth ?? 32}`, ...args]);
  const r = job[opts.dir ?? 'write'];
  return { iops: r.iops, ios: r.total_ios, seconds: r.runtime / 1000, bytesPerSecond: r.bw_bytes };
}
