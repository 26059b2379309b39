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
. "$REPO/test/vm/guest/checks.sh"

echo "vm: suite $SUITE starts at uptime $(cut -d' ' -f1 /proc/uptime)s"
if [ "$(uname -r)" != "$KVER" ]; then
  fail_check "kernel-version" "the guest runs $(uname -r), the module was built for $KVER"
fi
if [ "$(ls /sys/class/net)" != "lo" ]; then
  fail_check "no-network" "the guest has network interfaces: $(ls /sys/class/net | tr '\n' ' ')"
fi
. "$REPO/test/vm/suites/$SUITE.sh"
echo "vm: suite $SUITE ends at uptime $(cut -d' ' -f1 /proc/uptime)s"
