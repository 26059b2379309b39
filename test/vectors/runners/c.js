// @ts-check
// The `c` runner: every vector through the kmod-port's C targets, built as a userspace program
// (kmod-port/build/dmkit-harness, made with `make -C kmod-port harness` when out of date). The
// harness parses the .vec file itself (in C) and runs it once per completion order (FIFO,
// reversed, seeded shuffle; see kmod-port/harness/main.c); this module only runs it, one process
// per vector so that a crash fails that vector alone, and reads its `pass`/`FAIL` line.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const KMOD = fileURLToPath(new URL('../../../kmod-port/', import.meta.url));
const HARNESS = `${KMOD}build/dmkit-harness`;

export const timeoutMs = 60_000;

/**
 * Builds the harness (make does nothing when it is up to date) and checks that the target names
 * it registers are those kmod-port/target-names.json gives the kernel runner.
 */
export async function setup() {
  try {
    await run('make', ['-s', '-C', KMOD, 'harness'], { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = /** @type {{stderr?: string, message: string}} */ (err);
    return { buildError: `building the C harness failed: ${(e.stderr || e.message).trim().split('\n').slice(-15).join('\n')}` };
  }
  const { stdout } = await run(HARNESS, ['--target-names']);
  const registered = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split(' ')));
  const listed = JSON.parse(await readFile(`${KMOD}target-names.json`, 'utf8'));
  if (JSON.stringify(registered) !== JSON.stringify(listed)) {
    return { buildError: `the C targets register ${JSON.stringify(registered)}, target-names.json says ${JSON.stringify(listed)}` };
  }
  return { buildError: null };
}

/**
 * @param {import('../lib/parse.js').Vector} vector
 * @param {{buildError: string|null}} context
 */
export async function runVector(vector, context) {
  if (context.buildError) return { status: 'fail', detail: context.buildError };
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await run(HARNESS, [vector.file], { maxBuffer: 16 << 20 }));
  } catch (err) {
    const e = /** @type {{stdout?: string, stderr?: string, code?: number|string, signal?: string}} */ (err);
    stdout = e.stdout ?? '';
    stderr = e.stderr ?? '';
    if (!/^(pass|FAIL) {2}/m.test(stdout)) {
      const why = e.signal ? `killed by ${e.signal}` : `exit status ${e.code}`;
      return { status: 'fail', detail: `the harness stopped (${why}): ${lastLines(stderr)}` };
    }
  }
  const line = stdout.split('\n').find((l) => l.startsWith(`pass  ${vector.name}`) || l.startsWith(`FAIL  ${vector.name}`));
  if (!line) return { status: 'fail', detail: `no result line from the harness: ${lastLines(stdout + stderr)}` };
  if (line.startsWith('pass')) {
    if (stderr.trim()) return { status: 'fail', detail: `passed, but the harness reported: ${lastLines(stderr)}` };
    return { status: 'pass' };
  }
  return { status: 'fail', detail: line.slice(`FAIL  ${vector.name}: `.length) };
}

/** @param {string} text */
function lastLines(text) {
  return text.trim().split('\n').slice(-8).join(' / ') || '(no output)';
}
