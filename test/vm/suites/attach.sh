# `dmkit attach` through the kernel's netlink interface: the server connects /dev/nbdN itself
# (host-nbd/attach and its addon), with no nbd-client involved (attach-ioctl.sh: the ioctls;
# attach-crash.sh: kill -9 of the server and the errors a user meets).
#  - the nbd module cannot be loaded: the message says how to load it;
#  - every golden vector through devices attached that way;
#  - ext4 (mkfs, files, fsck), fio's crc32c verify, a detach that flushes (the image file alone
#    then holds a clean filesystem), a mounted device refused, reattach, SIGTERM flushing and
#    detaching.
. "$REPO/test/vm/guest/attach-lib.sh"
mkdir -p "$W/nomod"
if [ -e /sys/module/nbd ]; then skip "no-module-says-modprobe" "nbd is already loaded"
else check "no-module-says-modprobe" no_module; fi
check "modprobe-nbd" modprobe nbd max_part=0  # no partition scan: it would read the devices behind the vectors' back
workload netlink
