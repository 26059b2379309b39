# `dmkit attach` through the kernel's netlink interface: the server connects /dev/nbdN itself
# (host-nbd/attach and its addon), with no nbd-client involved (attach-ioctl.sh: the ioctls).
#  - the errors a user meets first: the nbd module cannot be loaded;
#  - every golden vector through devices attached that way;
#  - ext4 (mkfs, files, fsck), fio's crc32c verify, a detach that flushes (the image file alone
#    then holds a clean filesystem), reattach, SIGTERM flushing and detaching;
#  - kill -9 of the server while attached: I/O fails instead of hanging, the device waits to be
#    reattached, a restarted server reattaches it, and a read in flight during the crash
#    completes once it has;
#  - export unknown, device busy or not attached, mounted device, not root.
. "$REPO/test/vm/guest/attach-lib.sh"
mkdir -p "$W/nomod"
if [ -e /sys/module/nbd ]; then skip "no-module-says-modprobe" "nbd is already loaded"
else check "no-module-says-modprobe" no_module; fi
check "modprobe-nbd" modprobe nbd
workload netlink
kill_netlink
check "errors-say-what-to-do" errors
