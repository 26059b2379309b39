// @ts-check
// Runs a benchmark client (fio, nbdsh) to completion and collects what it printed.
import { spawn } from 'node:child_process';
import { clientEnv } from './servers.js';

/** @param {string} cmd @param {string[]} args @returns {Promise<{code: number, stdout: string, stderr: string}>} */
export function capture(cmd, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { env: clientEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    proc.on('error', reject);
    proc.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
