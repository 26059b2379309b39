// @ts-check
// The `kernel-log` statement's lines as each kind of host has them: the core's kernel log
// ("DEV: TARGET: text", dm_take_log) and `dmkit serve`'s log of it ("dmkit: device DEV: TARGET:
// text"). The statement compares the text alone, as the kernel's DMERR line carries it.

/** The text of one of the core's kernel-log lines. @param {string} line */
export function coreLogText(line) {
  return line.replace(/^[^:]*: [^:]*: /, '');
}

/**
 * The kernel-log texts in a stretch of `dmkit serve`'s log (its other lines, such as "device
 * DEV: event N, status now: ...", are not the kernel's).
 * @param {string} log
 */
export function serverLogTexts(log) {
  return [...log.matchAll(/^dmkit: device [^:\n]*: [^:\s]+: (.*)$/gm)].map((m) => m[1]);
}

/**
 * A host's kernelLog over a running `dmkit serve`: the server logs these lines when it answers
 * the request that caused them, before any later control reply; so after one more control round
 * trip and a turn for the pipe's data, what it logged since the last call is there.
 * @param {() => Promise<unknown>} roundTrip a control request
 * @param {() => string} log the server's log so far
 * @param {number} seen how much of the log earlier calls read
 * @returns {Promise<{texts: string[], seen: number}>}
 */
export async function serverKernelLog(roundTrip, log, seen) {
  await roundTrip();
  await new Promise((r) => setTimeout(r, 10));
  const all = log();
  return { texts: serverLogTexts(all.slice(seen)), seen: all.length };
}
