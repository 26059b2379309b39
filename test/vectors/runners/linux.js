// @ts-check
// The `linux` runner: every vector through Linux's own device-mapper targets, the oracle the
// model and dmkit are judged by. Needs a kernel with device-mapper and root: it runs in the qemu
// guest of `npm run test:vm` (and skips elsewhere). Debian's kernel does not build ebs, so
// vectors loading it are skipped here; the `kernel` runner covers them through the C port.
// Refused tables are only checked to fail: Linux words its messages differently from dmkit.
import { kernelRunner } from './_kernel-dm.js';

export const LINUX_TARGETS = ['linear', 'striped', 'zero', 'error', 'snapshot', 'snapshot-origin',
  'snapshot-merge', 'flakey', 'delay'];

/** Vectors of documented behaviour that Debian's 6.1 kernel lacks (docs/vectors.md, divergences). */
export const LINUX_CANNOT_CHECK = {
  'flakey-error-reads': 'flakey error_reads is newer than Linux 6.1',
  'flakey-corrupt-read': 'Debian\'s Linux 6.1 leaves reads uncorrupted (corrupt_bio_byte ... r has no effect there)',
  'snap-handover-in-one-table': 'Linux 6.1 refuses these tables too, but may oops destroying them (NULL pointer dereference in __find_snapshots_sharing_cow, from snapshot_dtr in table_load): the guest would panic',
  'zero-discard-and-write-zeroes': 'dm-zero takes discards from version 1.2.0, newer than the 1.1.0 of Linux 6.1',
  'snap-discard-misaligned': 'Linux 6.1 cuts snapshot discards into chunk-sized pieces from their first sector, not at chunk boundaries (its discard granularity is given in sectors, read as bytes): a chunk-sized piece starting mid-chunk zeroes into the next COW chunk',
};

/** Tables Linux accepts and dmkit refuses, by the vector's message (docs/vectors.md, divergences):
 * Linux's snapshot ignores words after its announced feature arguments. */
export const LINUX_ACCEPTS = [/: snapshot(-merge)?: unexpected arguments after the features: '.*'$/];

export const { timeoutMs, setup, runVector, teardown } = kernelRunner({
  prefix: 'vl-',
  targets: LINUX_TARGETS,
  lacks: ['ebs'],
  cannotCheck: LINUX_CANNOT_CHECK,
  rangeCheckedAtResume: true,
  acceptedHere: LINUX_ACCEPTS,
  targetName: (t) => t,
  compareMessages: false,
  kernelLogPrefix: 'device-mapper: snapshots: ', // dm-snap.c's DM_MSG_PREFIX
});
