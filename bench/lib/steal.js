// @ts-check
// How much of the machine's CPU the hypervisor gave to others while a test ran ("steal" in
// /proc/stat). On a shared VM it is the noise both servers suffer alike: printed beside each
// row so that a swing between runs can be told from a change in the servers.
import { readFileSync } from 'node:fs';

/** The machine's CPU counters so far: stolen and all, in clock ticks. */
export function cpuTicks() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest times are inside user and nice)
  return { steal: fields[7] ?? 0, all: fields.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** The share of the CPU stolen between two readings of cpuTicks, in percent. */
export function stolenPercent(before, after) {
  const all = after.all - before.all;
  return all > 0 ? (100 * (after.steal - before.steal)) / all : 0;
}
