#!/bin/bash
# Runs in the guest, chrooted into the host root (read-only): sets up what every suite needs and
# runs test/vm/suites/$SUITE.sh. Results go to $OUT/results (format in checks.sh); the exit code
# only tells the host that the suite ran to its end.
set -u
OUT=/tmp/out
. "$OUT/params"   # REPO SUITE KVER MODULE_MISSING VECTOR_FILTER
export OUT REPO SUITE KVER
# No udev in the guest: libdevmapper must create and remove the /dev/mapper nodes itself.
export DM_DISABLE_UDEV=1
cd /tmp   # writable; fio keeps a verify state file in its working directory
# Every node in the guest runs with --no-liftoff. V8 first runs Wasm through its baseline compiler
# (Liftoff) and later, from a background thread, patches the function's jump-table slot to the
# optimised code while the main thread may be calling through it. Real CPUs see that 5-byte
# `jmp rel32` change at once; qemu's multi-threaded TCG can translate it half-written (a core dump
# of `dmkit serve` showed a call landing mid-instruction: the slot's first displacement byte new,
# the other three old), so the server died with SIGSEGV or SIGILL. Without Liftoff each function
# is compiled once, on the thread that first calls it: nothing is patched under a running thread.
mkdir -p /tmp/vm-bin
printf '#!/bin/sh\nexec /usr/bin/node --no-liftoff "$@"\n' > /tmp/vm-bin/node
chmod +x /tmp/vm-bin/node
export PATH=/tmp/vm-bin:$PATH
. "$REPO/test/vm/guest/checks.sh"

echo "vm: suite $SUITE starts at uptime $(cut -d' ' -f1 /proc/uptime)s"
if [ "$(uname -r)" != "$KVER" ]; then
  fail_check "kernel-version" "the guest runs $(uname -r), the module was built for $KVER"
fi
if [ "$(node -p "process.execArgv.includes('--no-liftoff')")" != true ]; then
  fail_check "node-without-liftoff" "node in the guest does not run with --no-liftoff"
fi
if [ "$(ls /sys/class/net)" != "lo" ]; then
  fail_check "no-network" "the guest has network interfaces: $(ls /sys/class/net | tr '\n' ' ')"
fi
. "$REPO/test/vm/suites/$SUITE.sh"
echo "vm: suite $SUITE ends at uptime $(cut -d' ' -f1 /proc/uptime)s"
