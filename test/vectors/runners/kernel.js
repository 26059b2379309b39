// @ts-check
// The `kernel` runner: every vector through the kmod-port's targets in a real kernel, with
// dmsetup, in the qemu guest of `npm run test:vm` (which loads dm-dmkit.ko first); skips
// elsewhere. The module's target names come from kmod-port/target-names.json (dm-ioctl allows 15
// characters, so snapshot-origin is dmkit-origin). A refused table's message is compared with
// the one the module left in the kernel log whenever the module (not the kernel's dm core) gave it.
import { readFileSync } from 'node:fs';
import { kernelRunner } from './_kernel-dm.js';
import * as dm from '../../vm/guest/dmsetup.js';

/** @type {Record<string, string>} vector target name -> the module's */
const NAMES = JSON.parse(readFileSync(new URL('../../../kmod-port/target-names.json', import.meta.url), 'utf8'));
export const DMKIT_TARGETS = Object.keys(NAMES);

export const { timeoutMs, setup, runVector, teardown } = kernelRunner({
  prefix: 'vk-',
  targets: DMKIT_TARGETS,
  lacks: [],
  targetName: (t) => NAMES[t] ?? `dmkit-${t}`,
  compareMessages: true,
  kernelLogPrefix: 'device-mapper: dmkit: ', // the module's DM_MSG_PREFIX
  async unavailable() {
    const have = await dm.targets();
    const missing = Object.values(NAMES).filter((t) => !have.includes(t));
    if (missing.length === DMKIT_TARGETS.length) return 'the dm-dmkit module is not loaded (npm run test:vm loads it)';
    if (missing.length) return `the loaded dm-dmkit module lacks ${missing.join(', ')}`;
    return null;
  },
});
