# Shared by the attach suites (test/vm/suites/attach.sh, attach-ioctl.sh, attach-crash.sh): the
# checks of `dmkit attach` in the guest, as functions. Needs guest/checks.sh (check, same...).
. "$REPO/test/vm/guest/dmkit-serve.sh"
W=/tmp/attach
mkdir -p "$W"
dmkit() { node "$REPO/bin/dmkit.js" "$@"; }
MiB=$((1024 * 1024))
FS_SECTORS=$((256 * 2048))   # 256 MiB
RAW_SECTORS=$((64 * 2048))   # 64 MiB

# expect_failure WHAT PATTERN CMD...: CMD must fail and say PATTERN (an extended regex).
expect_failure() {
  local what=$1 pattern=$2 out rc
  shift 2
  out=$("$@" 2>&1); rc=$?
  echo "$out"
  [ $rc -ne 0 ] || { echo "$what: succeeded, expected a failure"; return 1; }
  grep -qE "$pattern" <<< "$out" || { echo "$what: the message does not match /$pattern/"; return 1; }
}

# wait_until SECONDS CMD...: polls CMD until it succeeds, for at most SECONDS of wall time.
wait_until() {
  local until=$(( SECONDS + $1 ))
  shift
  while (( SECONDS < until )); do "$@" && return 0; sleep 0.1; done
  "$@"
}
bound() { [ -e "/sys/block/${1#/dev/}/pid" ]; }
unbound() { ! bound "$1"; }

# ---- before the module is there: the kernel cannot load it (modprobe points at /bin/false)
no_module() {
  local saved ok=0
  saved=$(cat /proc/sys/kernel/modprobe)
  echo /bin/false > /proc/sys/kernel/modprobe
  serve_start "$W/nomod" --quiet --image "$W/nomod/d.img=8M" --device d "0 16384 linear $W/nomod/d.img 0" || ok=1
  expect_failure "attach" 'nbd kernel module is not loaded: load it with `modprobe nbd`' \
    dmkit attach d --control "$W/nomod/control.sock" || ok=1
  expect_failure "detach" 'nbd kernel module is not loaded' dmkit detach /dev/nbd0 || ok=1
  serve_stop || ok=1
  echo "$saved" > /proc/sys/kernel/modprobe
  return $ok
}

# ---- the workload, once per kernel interface ----------------------------------------------
serve_workload() {  # serve_workload DIR: exports fs (256 MiB) and raw (64 MiB, attached at start)
  serve_start "$1" --image "$1/fs.img=256M" --image "$1/raw.img=64M" \
    --device fs "0 $FS_SECTORS linear $1/fs.img 0" --device raw "0 $RAW_SECTORS linear $1/raw.img 0" \
    --attach raw=/dev/nbd5 &&
    wait_until 60 grep -q 'raw attached as /dev/nbd5' "$1/serve.log" || { cat "$1/serve.log"; return 1; }
}

# The device is the kernel's, connected the way asked for, by the server process itself.
connected_as() {  # connected_as DEV METHOD EXPORT
  local sys=/sys/block/${1#/dev/} pid
  pid=$(cat "$sys/pid") || return 1
  [ -d "/proc/$SERVE_PID/task/$pid" ] || { echo "pid $pid is not a thread of the server ($SERVE_PID)"; return 1; }
  if [ "$2" = netlink ]; then same "backend" "$(cat "$sys/backend")" "dmkit:$3" || return 1
  else [ ! -e "$sys/backend" ] || { echo "ioctl devices have no backend file"; return 1; }; fi
  # Several connections when the export allows multi-conn: one per vCPU (2), each a hw queue.
  same "hardware queues" "$(ls "$sys/mq" | wc -l)" 2 && same "size" "$(cat "$sys/size")" "$4"
}

make_files() {
  mkfs.ext4 -q -F "$DEV" && fsck.ext4 -f -n "$DEV" > /dev/null &&
    mkdir -p /tmp/mnt && mount "$DEV" /tmp/mnt || return 1
  local i ok=0
  for i in $(seq 12); do head -c $((i * 53 * 1024)) /dev/urandom > "/tmp/mnt/file$i" || ok=1; done
  (cd /tmp/mnt && find . -type f ! -path './lost+found/*' | sort | xargs sha256sum) > "$W/manifest" || ok=1
  umount /tmp/mnt || ok=1
  return $ok
}

check_files() {
  mount -o ro "$DEV" /tmp/mnt || return 1
  local ok=0
  (cd /tmp/mnt && sha256sum --quiet -c "$W/manifest") || ok=1
  umount /tmp/mnt || ok=1
  return $ok
}

mounted_detach_refused() {
  mount "$DEV" /tmp/mnt || return 1
  local ok=0
  expect_failure "detach while mounted" 'is in use \(mounted' dmkit detach "$DEV" || ok=1
  bound "$DEV" || { echo "the device was detached anyway"; ok=1; }
  umount /tmp/mnt || ok=1
  return $ok
}

fio_verify() {  # fio_verify DEV NAME
  (cd "$W" && fio --name="$2" --filename="$1" --rw=randwrite --bs=4k --size=16M \
    --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --eta=never --output="$W/$2.fio") || { cat "$W/$2.fio"; return 1; }
  grep -E '^ *(write|read):|err=' "$W/$2.fio"
  ! grep -qE 'err= *[1-9]' "$W/$2.fio"
}

# Large reads of a linear device go from the image to the socket without the core: a receive
# thread reads and sends them (up to 2 MiB), or the event loop sends them from the file
# (sendfile; docs/nbd.md). The kernel client (simple replies) reads back what the image holds,
# and the server counted them one way or the other.
read_past_core() {  # read_past_core DIR
  local before after
  # Columns: 4 "N read(s) sent from files", 5 "W write(s) and R read(s) by receive threads".
  local count='$1 == "raw" { split($5, t, " "); print $4 + t[4] }'
  before=$(dmkit exports --control "$1/control.sock" | awk -F'\t' "$count")
  cmp <(dd if=/dev/nbd5 bs=1M count=32 iflag=direct status=none) <(head -c $((32 * MiB)) "$1/raw.img") || return 1
  after=$(dmkit exports --control "$1/control.sock" | awk -F'\t' "$count")
  echo "reads sent from files or by receive threads: $before before, $after after"
  [ "$after" -gt "$before" ]
}

# A resume that changes a device's length changes the attached device's size at once, as dm's
# resume does (lvextend: grow the image, reload a longer table, resume); a shorter table shrinks
# it. Export grow (64 MiB, /dev/nbd1) grows to 128 MiB and shrinks to 32 MiB.
GROW_DEV=/dev/nbd1
resize_start() {  # resize_start DIR: export grow, attached, with a known MiB at its end
  local img=$1/grow.img
  truncate -s $((64 * MiB)) "$img" && head -c $MiB /dev/urandom > "$W/grow-old" && head -c $MiB /dev/urandom > "$W/grow-new" &&
    dmkit_ctl create grow --table "0 $((64 * 2048)) linear $img 0" &&
    same device "$(dmkit attach grow $GROW_DEV --control "$1/control.sock")" $GROW_DEV &&
    dd if="$W/grow-old" of=$GROW_DEV bs=1M seek=63 oflag=direct status=none
}
sized() {  # sized BYTES: what sysfs and the block device say
  same "sectors" "$(cat /sys/block/${GROW_DEV#/dev/}/size)" $(( $1 / 512 )) && same "bytes" "$(blockdev --getsize64 $GROW_DEV)" "$1"
}
resize_grow() {  # resize_grow DIR METHOD
  truncate -s $((128 * MiB)) "$1/grow.img" &&
    dmkit_ctl reload grow --table "0 $((128 * 2048)) linear $1/grow.img 0" && dmkit_ctl resume grow &&
    sized $((128 * MiB)) &&
    grep -F "$GROW_DEV: export 'grow' resized: $((64 * MiB)) -> $((128 * MiB)) bytes ($2)" "$1/serve.log"
}
resize_new_region() {  # the MiB past the old end: written and read back through the device
  dd if="$W/grow-new" of=$GROW_DEV bs=1M seek=127 oflag=direct status=none &&
    cmp "$W/grow-new" <(dd if=$GROW_DEV bs=1M skip=127 count=1 iflag=direct status=none) &&
    cmp "$W/grow-new" <(dd if="$SERVE_DIR/grow.img" bs=1M skip=127 count=1 status=none)
}
resize_old_data() {
  cmp "$W/grow-old" <(dd if=$GROW_DEV bs=1M skip=63 count=1 iflag=direct status=none)
}
resize_shrink() {  # resize_shrink DIR METHOD
  dmkit_ctl reload grow --table "0 $((32 * 2048)) linear $1/grow.img 0" && dmkit_ctl resume grow &&
    sized $((32 * MiB)) &&
    grep -F "$GROW_DEV: export 'grow' resized: $((128 * MiB)) -> $((32 * MiB)) bytes ($2)" "$1/serve.log" &&
    cmp <(head -c $((32 * MiB)) "$1/grow.img") <(dd if=$GROW_DEV bs=1M iflag=direct status=none)
}
resize_done() {
  dmkit detach $GROW_DEV && dmkit_ctl remove grow
}

# SIGTERM with unflushed writes on /dev/nbd5: stopping flushes and detaches before exiting.
# Descriptor 9 keeps the device open meanwhile: the kernel writes a block device's dirty pages
# back on its last close, which would hide a missing flush.
sigterm_detaches() {  # sigterm_detaches DIR
  local ok=0
  head -c $((4 * MiB)) /dev/urandom > "$W/tail"
  exec 9< /dev/nbd5
  dd if="$W/tail" of=/dev/nbd5 bs=1M seek=60 status=none || ok=1   # page cache only
  serve_stop || ok=1
  cmp "$W/tail" <(dd if="$1/raw.img" bs=1M skip=60 count=4 status=none) || { echo "the writes did not reach the image"; ok=1; }
  exec 9<&-
  wait_until 10 unbound /dev/nbd5 || { echo "/dev/nbd5 is still attached"; ok=1; }
  return $ok
}

workload() {  # workload METHOD
  local m=$1 d=$W/$1
  mkdir -p "$d"
  export DMKIT_NBD_METHOD=$m
  check_vectors "vectors-through-dmkit-attach-$m" env DMKIT_VM_ATTACH=dmkit node "$REPO/test/vm/guest/nbd-vectors.js" $VECTOR_FILTER
  check "serve-attach-at-start-$m" serve_workload "$d" || return
  check "attach-prints-first-free-device-$m" eval 'DEV=$(dmkit attach fs --control "$d/control.sock") && same device "$DEV" /dev/nbd0' &&
    check "attached-by-the-server-with-$m" connected_as "$DEV" "$m" fs "$FS_SECTORS" &&
    check "ext4-mkfs-files-fsck-$m" make_files &&
    check "ext4-fsck-clean-$m" fsck.ext4 -f -n "$DEV" &&
    check "detach-refuses-mounted-device-$m" mounted_detach_refused &&
    check "detach-flushes-$m" dmkit detach "$DEV" &&
    check "detached-device-unbound-$m" unbound "$DEV" &&
    check "image-alone-holds-clean-fs-$m" fsck.ext4 -f -n "$d/fs.img" &&
    check "reattach-same-device-$m" eval 'same device "$(dmkit attach fs /dev/nbd0 --control "$d/control.sock")" /dev/nbd0' &&
    check "files-intact-after-reattach-$m" check_files &&
    check "detach-again-$m" dmkit detach "$DEV"
  check "fio-crc32c-verify-$m" fio_verify /dev/nbd5 "raw-$m"
  check "large-reads-past-the-core-$m" read_past_core "$d"
  check "resize-attach-grow-export-$m" resize_start "$d" &&
    check "resize-resume-longer-table-grows-device-$m" resize_grow "$d" "$m" &&
    check "resize-new-region-reads-writes-$m" resize_new_region &&
    check "resize-old-data-intact-$m" resize_old_data &&
    check "resize-resume-shorter-table-shrinks-device-$m" resize_shrink "$d" "$m" &&
    check "resize-detach-remove-$m" resize_done
  check "sigterm-flushes-and-detaches-$m" sigterm_detaches "$d"
  unset DMKIT_NBD_METHOD
}

# ---- kill -9 while attached --------------------------------------------------------------
# Reads DEV over and over until a read fails or the device has shrunk to nothing. The ioctl
# interface resets a device whose server died to size 0: a kill that lands between two reads
# lets the next dd read nothing and succeed, and that must end the loop too.
start_reader() {
  ( while [ "$(blockdev --getsize64 "$1" 2> /dev/null || echo 0)" -gt 0 ] &&
      dd if="$1" of=/dev/null bs=1M iflag=direct status=none; do :; done
    echo "reader: stopped at $(date +%s) (a read failed, or the device is empty)" ) &
  READER=$!
}

gone() { ! kill -0 "$1" 2> /dev/null; }

killed() {  # killed METHOD TIMEOUT DEAD_TIMEOUT: attach, read, kill -9, the reader must stop
  local t0 t1
  start_reader /dev/nbd0
  sleep 1
  kill -KILL "$SERVE_PID"; wait "$SERVE_PID" 2> /dev/null; SERVE_PID=""
  t0=$(date +%s)
  # Netlink: requests in flight time out (TIMEOUT), then wait for a reattach (DEAD_TIMEOUT).
  wait_until $(( $2 + $3 + 12 )) gone "$READER"
  t1=$(date +%s)
  if kill -0 "$READER" 2> /dev/null; then
    echo "the reader still hangs $((t1 - t0)) s after the kill"; kill "$READER"; return 1
  fi
  echo "$1: the reader stopped $((t1 - t0)) s after the kill -9"
}

# new_io_fails_fast: a new read fails at once (netlink: the device waits for a reattach, and
# fails I/O meanwhile). new_io_does_not_hang: the ioctl device is reset to size 0 instead.
new_io_fails_fast() {
  local rc
  timeout 20 dd if=/dev/nbd0 of=/dev/null bs=4k count=1 iflag=direct status=none; rc=$?
  [ $rc -ne 124 ] || { echo "a read hung for 20 s"; return 1; }
  [ $rc -ne 0 ] || { echo "a read succeeded on a device whose server is dead"; return 1; }
}
new_io_does_not_hang() {
  timeout 20 dd if=/dev/nbd0 of=/dev/null bs=4k count=1 iflag=direct status=none
  [ $? -ne 124 ] || { echo "a read hung for 20 s"; return 1; }
}

serve_kill() {  # serve_kill DIR ARGS...
  local d=$1; shift
  serve_start "$d" --image "$d/fs.img=64M" --device fs "0 $RAW_SECTORS linear $d/fs.img 0" "$@"
}

finishes() {  # finishes PID SECONDS: the background job PID ends within SECONDS, successfully
  wait_until "$2" gone "$1" || { echo "still running after $2 s"; kill "$1"; return 1; }
  wait "$1"
}

data_back() { same "contents" "$(sha_of /dev/nbd0)" "$(sha256sum < "$W/pattern" | cut -d' ' -f1)"; }

kill_netlink() {
  local d=$W/kill-netlink
  mkdir -p "$d"
  export DMKIT_NBD_METHOD=netlink
  head -c $((64 * MiB)) /dev/urandom > "$W/pattern"
  check "kill9-serve-netlink" serve_kill "$d" &&
    check "kill9-attach-short-timeouts-netlink" dmkit attach fs /dev/nbd0 --timeout 4 --dead-timeout 4 --control "$d/control.sock" &&
    check "kill9-write-pattern-netlink" dd if="$W/pattern" of=/dev/nbd0 bs=1M oflag=direct status=none &&
    check "kill9-io-fails-not-hangs-netlink" killed netlink 4 4 &&
    check "kill9-new-io-fails-fast-netlink" new_io_fails_fast &&
    check "kill9-device-still-held-for-reattach-netlink" bound /dev/nbd0 &&
    check "kill9-restart-reattaches-netlink" serve_kill "$d" --attach fs=/dev/nbd0 &&
    check "kill9-says-reattached-netlink" wait_until 60 grep -q "reattached export 'fs' to /dev/nbd0" "$d/serve.log" &&
    check "kill9-data-intact-after-reattach-netlink" data_back || return
  # The restarted server's defaults (timeout and dead timeout 30 s): a read in flight during a
  # crash waits, and completes once a new server reattaches.
  dd if=/dev/nbd0 of="$W/inflight" bs=1M iflag=direct status=none &
  local dd_pid=$!
  sleep 2
  kill -KILL "$SERVE_PID"; wait "$SERVE_PID" 2> /dev/null; SERVE_PID=""
  check "kill9-restart-during-read-netlink" serve_kill "$d" --attach fs=/dev/nbd0
  check "kill9-read-in-flight-completes-netlink" finishes "$dd_pid" 90 &&
    check "kill9-read-in-flight-data-right-netlink" cmp "$W/pattern" "$W/inflight"
  check "kill9-server-stops-cleanly-netlink" serve_stop
  unset DMKIT_NBD_METHOD
}

# A server restarted with a longer table (the image grew while it was down) reattaches the
# device with the export's size as it is now: the device grows at the reattach, its data stays.
kill_netlink_grown() {
  local d=$W/kill-grown
  mkdir -p "$d"
  export DMKIT_NBD_METHOD=netlink
  head -c $((64 * MiB)) /dev/urandom > "$W/pattern"
  check "kill9-grown-serve-netlink" serve_kill "$d" &&
    check "kill9-grown-attach-netlink" dmkit attach fs /dev/nbd0 --control "$d/control.sock" &&
    check "kill9-grown-write-pattern-netlink" dd if="$W/pattern" of=/dev/nbd0 bs=1M oflag=direct status=none || return
  kill -KILL "$SERVE_PID"; wait "$SERVE_PID" 2> /dev/null; SERVE_PID=""
  truncate -s $((128 * MiB)) "$d/fs.img"
  check "kill9-grown-restart-longer-table-netlink" serve_start "$d" --device fs "0 $((128 * 2048)) linear $d/fs.img 0" --attach fs=/dev/nbd0 &&
    check "kill9-grown-reattach-resizes-netlink" wait_until 60 grep -F "/dev/nbd0: export 'fs' resized: $((64 * MiB)) -> $((128 * MiB)) bytes (netlink)" "$d/serve.log" &&
    check "kill9-grown-device-size-netlink" same bytes "$(blockdev --getsize64 /dev/nbd0)" $((128 * MiB)) &&
    check "kill9-grown-data-intact-netlink" cmp "$W/pattern" <(dd if=/dev/nbd0 bs=1M count=64 iflag=direct status=none)
  check "kill9-grown-server-stops-cleanly-netlink" serve_stop
  unset DMKIT_NBD_METHOD
}

kill_ioctl() {
  local d=$W/kill-ioctl
  mkdir -p "$d"
  export DMKIT_NBD_METHOD=ioctl
  head -c $((64 * MiB)) /dev/urandom > "$W/pattern"
  check "kill9-serve-ioctl" serve_kill "$d" &&
    check "kill9-attach-ioctl" dmkit attach fs /dev/nbd0 --control "$d/control.sock" &&
    check "kill9-write-pattern-ioctl" dd if="$W/pattern" of=/dev/nbd0 bs=1M oflag=direct status=none &&
    check "kill9-io-fails-not-hangs-ioctl" killed ioctl 0 0 &&
    check "kill9-new-io-does-not-hang-ioctl" new_io_does_not_hang &&
    check "kill9-device-freed-ioctl" wait_until 10 unbound /dev/nbd0 &&
    check "kill9-restart-reattaches-ioctl" serve_kill "$d" --attach fs=/dev/nbd0 &&
    check "kill9-attached-again-ioctl" wait_until 60 grep -q "attached export 'fs' to /dev/nbd0" "$d/serve.log" &&
    check "kill9-data-intact-after-reattach-ioctl" data_back
  check "kill9-server-stops-cleanly-ioctl" serve_stop
  unset DMKIT_NBD_METHOD
}

# ---- what a user gets wrong ---------------------------------------------------------------
errors() {
  local d=$W/errors ok=0
  mkdir -p "$d"
  serve_start "$d" --quiet --image "$d/a.img=8M" --device a "0 16384 linear $d/a.img 0" || return 1
  dmkit attach a /dev/nbd0 --control "$d/control.sock" > /dev/null || ok=1
  expect_failure "unknown export" "no device named 'nosuch'" dmkit attach nosuch --control "$d/control.sock" || ok=1
  expect_failure "attached twice" '/dev/nbd0 is already attached to export .a. by this server' \
    dmkit attach a /dev/nbd0 --control "$d/control.sock" || ok=1
  nbd-client -u "$d/nbd.sock" /dev/nbd3 -N a > /dev/null || ok=1
  expect_failure "held by nbd-client" '/dev/nbd3 is busy' dmkit attach a /dev/nbd3 --control "$d/control.sock" || ok=1
  nbd-client -d /dev/nbd3 > /dev/null
  expect_failure "not attached" '/dev/nbd7 is not attached' dmkit detach /dev/nbd7 || ok=1
  expect_failure "not root" 'needs root' setpriv --reuid=65534 --regid=65534 --clear-groups \
    node "$REPO/bin/dmkit.js" detach /dev/nbd0 || ok=1
  bound /dev/nbd0 || { echo "the failed detach detached"; ok=1; }
  serve_stop || ok=1
  return $ok
}
