#!/bin/sh
# PID 1 of the VM harness's initramfs (busybox). Its one job: reach the host's root filesystem
# and hand over to the host's own bash, then power off.
#
# The host shares three folders over virtio-9p:
#   hostroot  /            read-only: node, dmsetup, nbd-client, fio, /lib/modules come from here
#   repo      the checkout read-only, mounted at its own path (it may live under /tmp, which the
#             guest hides behind a tmpfs)
#   scratch   writable: the suite's inputs (params, module) in, results and logs out
# The suite then runs chrooted in the host root; this script writes its exit code to the scratch
# share, so a guest that dies or hangs leaves no exit code and the host counts a failure.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

die() { echo "vm-init: $*"; poweroff -f; sleep 10; }

# Modules needed to mount 9p, in dependency order (listed by the host when it built this image).
for m in $(cat /modules.list); do
  insmod "/modules/$m" || die "insmod $m failed"
done

NINEP="trans=virtio,version=9p2000.L,msize=512000"
R=/host
mkdir -p $R
# cache=loose is safe: nothing changes the host root while the guest runs.
mount -t 9p -o $NINEP,cache=loose,ro hostroot $R || die "cannot mount the host root over 9p"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mount -t devpts devpts $R/dev/pts 2>/dev/null
# devtmpfs lacks these links; bash's <(...) and tools opening /dev/stdin need them.
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o size=1g tmpfs $R/tmp
mount -t tmpfs tmpfs $R/run
mkdir -p $R/tmp/out
# No cache on the scratch share: the host must see results the moment they are written.
mount -t 9p -o $NINEP scratch $R/tmp/out || die "cannot mount the scratch share"
. $R/tmp/out/params   # REPO, SUITE, ...
mkdir -p "$R$REPO" 2>/dev/null
mount -t 9p -o $NINEP,cache=loose,ro repo "$R$REPO" || die "cannot mount the repository share"

# The kernel's own module loading (request_module, e.g. for 'mount -t ext4') runs this path in the
# initramfs root, not in the chroot: send it to the host's modprobe.
printf '#!/bin/sh\nexec chroot %s /sbin/modprobe "$@"\n' $R > /bin/modprobe-host
chmod +x /bin/modprobe-host
echo /bin/modprobe-host > /proc/sys/kernel/modprobe

chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/tmp TERM=dumb LANG=C.UTF-8 /bin/bash "$REPO/test/vm/guest/suite.sh"
echo $? > $R/tmp/out/exit-code
sync
umount $R/tmp/out
poweroff -f
