#!/usr/bin/env bash
# npm run test:vm [-- SUITE...]: the kernel-side proofs. Boots Debian's kernel under qemu once per
# suite (a fresh kernel each, so a crash in one suite cannot spoil another) and runs
# test/vm/suites/SUITE.sh inside it. Prints the tally "N passed, M failed, K skipped" and exits
# non-zero if anything failed, including a guest that timed out or left no result.
# How it works and how to run one part: docs/vm.md.
set -uo pipefail
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
ALL_SUITES=(vectors-linux vectors-kernel snapshot-format nbd attach attach-ioctl attach-crash)
TIMEOUT=${DMKIT_VM_TIMEOUT:-900}   # seconds per suite

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
die() { echo "vm: $*" >&2; exit 1; }

if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
  cat <<USAGE
usage: npm run test:vm [-- SUITE...]   (bash test/vm/run.sh [SUITE...]; every suite with none)
Boots Debian's kernel under qemu once per suite and runs test/vm/suites/SUITE.sh in it (docs/vm.md).
suites: ${ALL_SUITES[*]} (and bench, which npm run bench -- vm runs)
environment: DMKIT_VM_TIMEOUT seconds per suite (900), DMKIT_VM_VECTORS a vector name filter,
DMKIT_VM_WORK a folder to use and keep, DMKIT_VM_MEM and DMKIT_VM_SMP the guest's memory and CPUs.
USAGE
  exit 0
fi
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=("${ALL_SUITES[@]}")
for s in "${suites[@]}"; do
  [ -f "$VM_DIR/suites/$s.sh" ] || die "unknown suite '$s' (suites: $(cd "$VM_DIR/suites" && ls | sed 's/\.sh$//' | tr '\n' ' '))"
done

T_ALL=$(now)
bash "$VM_DIR/lib/install.sh" || die "cannot install the packages the VM needs"
. "$VM_DIR/lib/kernel.sh"; . "$VM_DIR/lib/initramfs.sh"; . "$VM_DIR/lib/module.sh"
. "$VM_DIR/lib/boot.sh"; . "$VM_DIR/lib/results.sh"
vm_find_kernel || exit 1

# DMKIT_VM_WORK: use (and keep) this folder, for callers that read the suites' results
# themselves (bench/vm.js); otherwise a fresh one, removed after a run that passed.
if [ -n "${DMKIT_VM_WORK:-}" ]; then WORK=$DMKIT_VM_WORK; mkdir -p "$WORK" || exit 1
else WORK=$(mktemp -d "${TMPDIR:-/tmp}/dmkit-vm.XXXXXX"); fi
echo "vm: kernel $KVER, work folder $WORK"

t=$(now)
(cd "$REPO" && node scripts/build.js) || die "building the core failed"
# The attach suites need the native addon; the guest sees the checkout read-only.
(cd "$REPO" && node host-nbd/addon/build.js --if-stale) || echo "vm: the attach addon did not build: the attach suites will fail"
INITRAMFS=$WORK/initramfs.gz
vm_build_initramfs "$KVER" "$INITRAMFS" || die "building the initramfs failed"
echo "vm: time prepare (core, initramfs) $(since "$t")s"
t=$(now)
vm_build_module "$KVER" "$WORK" || die "building the kmod-port module failed"
if [ -n "$MODULE" ]; then echo "vm: time build dm-dmkit.ko $(since "$t")s"
else echo "vm: $MODULE_MISSING"; fi

TIMINGS=()
for suite in "${suites[@]}"; do
  scratch=$WORK/$suite
  mkdir -p "$scratch"
  { echo "REPO=$REPO"; echo "SUITE=$suite"; echo "KVER=$KVER"
    echo "MODULE_MISSING='$MODULE_MISSING'"; echo "VECTOR_FILTER='${DMKIT_VM_VECTORS:-}'"; } > "$scratch/params"
  [ -n "$MODULE" ] && cp "$MODULE" "$scratch/dm-dmkit.ko"
  echo "vm: === $suite"
  t=$(now)
  vm_boot "$scratch" "$scratch/console.log" "$TIMEOUT"
  status=$?
  # A guest that never reached the suite failed to boot (an emulation hiccup on a loaded host),
  # not a test: boot once more, and say so.
  if ! grep -q "^vm: suite $suite starts" "$scratch/console.log"; then
    echo "vm: the guest did not boot (qemu status $status); booting again"
    rm -f "$scratch/results" "$scratch/exit-code"
    vm_boot "$scratch" "$scratch/console.log" "$TIMEOUT"
    status=$?
  fi
  TIMINGS+=("$(printf '%-18s %6ss' "$suite" "$(since "$t")")")
  vm_collect "$suite" "$scratch" "$status"
done

echo
echo "vm: timings (boot + tests + power-off per suite)"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %-18s %6ss\n' "whole run" "$(since "$T_ALL")"
for s in "${SKIPS[@]}"; do echo "vm: skipped $s"; done
for f in "${FAILURES[@]}"; do echo "vm: FAILED $f"; done
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
if [ "$TOTAL_FAILED" -gt 0 ]; then
  echo "vm: console logs kept in $WORK"
  exit 1
fi
[ -n "${DMKIT_VM_WORK:-}" ] || rm -rf "$WORK"
