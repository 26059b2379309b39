# `dmkit attach` through the kernel's NBD ioctls (the interface of kernels without netlink,
# forced here): every golden vector, ext4 + fsck, fio verify, detach, SIGTERM.
. "$REPO/test/vm/guest/attach-lib.sh"
check "modprobe-nbd" modprobe nbd max_part=0  # no partition scan: it would read the devices behind the vectors' back
workload ioctl
