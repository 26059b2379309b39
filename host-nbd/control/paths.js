// @ts-check
// Where the control socket lives when --control is not given: one per user, in a private dir.
import { join } from 'node:path';
import { tmpdir } from 'node:os';

export function defaultControlPath() {
  if (process.env.DMKIT_CONTROL) return process.env.DMKIT_CONTROL;
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const base = process.env.XDG_RUNTIME_DIR || (uid === 0 ? '/run' : tmpdir());
  return join(base, uid === 0 || process.env.XDG_RUNTIME_DIR ? 'dmkit' : `dmkit-${uid}`, 'control.sock');
}
