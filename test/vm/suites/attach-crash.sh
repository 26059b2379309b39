# `dmkit attach` when the server is killed (kill -9) while attached, through either kernel
# interface: I/O fails instead of hanging and the device is not stuck; a restarted server
# reattaches it with the data intact (netlink: the same device, and a read in flight during the
# crash completes; ioctl: the kernel reset it, it is attached afresh); a server restarted with a
# longer table reattaches the device at its new size (netlink). Then the errors a user
# meets: export unknown, device busy or not attached, not root.
. "$REPO/test/vm/guest/attach-lib.sh"
check "modprobe-nbd" modprobe nbd max_part=0  # no partition scan: it would read the devices behind the vectors' back
kill_netlink
kill_netlink_grown
kill_ioctl
check "errors-say-what-to-do" errors
