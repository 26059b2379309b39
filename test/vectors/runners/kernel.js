// @ts-check
// The `kernel` runner: every vector through the kmod-port's targets (dmkit-linear, ...) in a real
// kernel, with dmsetup, in the qemu guest of `npm run test:vm` (which loads dm-dmkit.ko first).
// Skips elsewhere. A refused table's message is compared with the one the module left in the
// kernel log whenever the module (not the kernel's dm core) gave it.
import { kernelRunner } from './_kernel-dm.js';
import * as dm from '../../vm/guest/dmsetup.js';

export const DMKIT_TARGETS = ['linear', 'striped', 'zero', 'error', 'snapshot', 'snapshot-origin',
  'snapshot-merge', 'ebs', 'flakey', 'delay'];

export const { timeoutMs, setup, runVector } = kernelRunner({
  prefix: 'vk-',
  targets: DMKIT_TARGETS,
  targetName: (t) => `dmkit-${t}`,
  compareMessages: true,
  async unavailable() {
    const have = await dm.targets();
    const missing = DMKIT_TARGETS.map((t) => `dmkit-${t}`).filter((t) => !have.includes(t));
    if (missing.length === DMKIT_TARGETS.length) return 'the dm-dmkit module is not loaded (npm run test:vm loads it)';
    if (missing.length) return `the loaded dm-dmkit module lacks ${missing.join(', ')}`;
    return null;
  },
});
