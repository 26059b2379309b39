// @ts-check
// What went wrong while attaching or detaching, said in terms of what to do about it.
// The addon's errors carry Node-style code/errno/syscall; here they become one clear sentence.
import { existsSync } from 'node:fs';

/** An attach failure whose message is meant for the user as it is. */
export class AttachError extends Error {
  /** @param {string} message @param {string} [code] errno name when a system call failed */
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

export const MODULE_HINT = 'the nbd kernel module is not loaded: load it with `modprobe nbd` (as root)';

export function nbdModuleLoaded() {
  return existsSync('/sys/module/nbd');
}

/**
 * Turns an addon error into an AttachError that says what to do.
 * @param {any} e the error thrown or rejected by the addon
 * @param {string} device '/dev/nbdN', or '' when none was chosen yet
 */
export function explain(e, device) {
  if (e instanceof AttachError) return e;
  const code = e?.code;
  const step = e?.syscall ?? '';
  const dev = device || 'the NBD device';
  const detail = e instanceof Error ? e.message : String(e);
  if (code === 'ENOENT' && /generic netlink family/.test(step)) return new AttachError(MODULE_HINT, code);
  if (code === 'ENOENT' && step.startsWith('open /dev/nbd')) {
    return new AttachError(nbdModuleLoaded()
      ? `${dev} does not exist (the nbd module made fewer devices: reload it with \`modprobe nbd nbds_max=N\`)`
      : MODULE_HINT, code);
  }
  if (code === 'EPERM' || code === 'EACCES') {
    return new AttachError(`permission denied (${step}): attaching and detaching NBD devices needs root (CAP_SYS_ADMIN)`, code);
  }
  if (code === 'EBUSY') return new AttachError(`${dev} is busy: another client is attached to it or is setting it up (${step})`, code);
  if (code === 'ENOTTY' || (code === 'EINVAL' && step.startsWith('NBD_'))) {
    return new AttachError(`the kernel refused ${step} for ${dev} (the kernel log, \`dmesg\`, says why): ${detail}`, code);
  }
  return new AttachError(`${dev}: ${detail}`, code);
}
