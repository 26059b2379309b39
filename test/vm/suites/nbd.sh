# `dmkit serve` in the guest with the kernel's own NBD client (nbd.ko + nbd-client) as the peer:
# every vector through /dev/nbdN, an ext4 filesystem on a snapshot-backed export that survives a
# detach and a server restart, and fio's crc32c verification through /dev/nbd0.
. "$REPO/test/vm/guest/dmkit-serve.sh"
W=/tmp/nbd
mkdir -p "$W/fs" "$W/fio"
# max_part=0: no partition scan at attach, which would read the device behind the vectors' back
# (a striped vector's error leg would be marked dead by it).
check "modprobe-nbd" modprobe nbd max_part=0

check_vectors "vectors-through-nbd" node "$REPO/test/vm/guest/nbd-vectors.js" $VECTOR_FILTER

# --- ext4 on a snapshot of an empty disk --------------------------------------------------
FS_SECTORS=$((64 * 2048))  # 64 MiB
serve_fs() {
  serve_start "$W/fs" --quiet --image "$W/fs/base.img=64M" --image "$W/fs/cow.img=64M" \
    --device base "0 $FS_SECTORS snapshot-origin $W/fs/base.img" \
    --device snap "0 $FS_SECTORS snapshot $W/fs/base.img $W/fs/cow.img P 16"
}

make_files() {
  mkfs.ext4 -q -F /dev/nbd0 && fsck.ext4 -f -n /dev/nbd0 > /dev/null &&
    mkdir -p /tmp/mnt && mount /dev/nbd0 /tmp/mnt || return 1
  local i ok=0
  for i in $(seq 20); do
    head -c $((i * 37 * 1024)) /dev/urandom > "/tmp/mnt/file$i" || ok=1
  done
  mkdir -p /tmp/mnt/dir/sub && cp /tmp/mnt/file7 /tmp/mnt/dir/sub/copy || ok=1
  (cd /tmp/mnt && find . -type f ! -path './lost+found/*' | sort | xargs sha256sum) > "$W/manifest" || ok=1
  umount /tmp/mnt || ok=1
  return $ok
}

check_files() {
  mount -o ro /dev/nbd0 /tmp/mnt || return 1
  local ok=0
  (cd /tmp/mnt && sha256sum --quiet -c "$W/manifest") || ok=1
  [ "$(wc -l < "$W/manifest")" -eq 21 ] || { echo "manifest has $(wc -l < "$W/manifest") files, expected 21"; ok=1; }
  umount /tmp/mnt || ok=1
  return $ok
}

# The origin stays as it was: every write went to the snapshot. The image was created sparse,
# so any write that reached it would have allocated blocks.
origin_untouched() {
  local blocks
  blocks=$(stat -c %b "$W/fs/base.img")
  [ "$blocks" -eq 0 ] || { echo "the origin image has $blocks blocks written"; return 1; }
}

if check "ext4-serve-snapshot-export" serve_fs; then
  check "ext4-attach-snapshot" nbd_attach snap /dev/nbd0 &&
    check "ext4-mkfs-fsck-write-files" make_files &&
    check "ext4-fsck-clean-after-writes" fsck.ext4 -f -n /dev/nbd0
  check "ext4-detach" nbd_detach /dev/nbd0
  check "ext4-origin-untouched" origin_untouched
  check "ext4-server-stops-cleanly" serve_stop
fi
if check "ext4-serve-again" serve_fs; then
  check "ext4-reattach" nbd_attach snap /dev/nbd0 &&
    check "ext4-fsck-clean-after-restart" fsck.ext4 -f -n /dev/nbd0 &&
    check "ext4-files-intact-after-restart" check_files
  nbd_detach /dev/nbd0
  check "ext4-server-stops-cleanly-again" serve_stop
fi

# --- fio with verification ----------------------------------------------------------------
# Random 4 KiB writes, queue depth 16, each block's crc32c verified by reading it back.
# A run that hangs is stopped after 5 minutes, showing what the kernel and the server still hold.
fio_verify() {  # fio_verify DEV NAME
  if ! (cd "$W/fio" && timeout 300 fio --name="$2" --filename="$1" --rw=randwrite --bs=4k --size=16M \
    --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --eta=never --output="$W/fio/$2.txt"); then
    cat "$W/fio/$2.txt"
    echo "requests in flight (read write): $(cat "/sys/block/${1#/dev/}/inflight")"
    dmkit_ctl status; tail -20 "$SERVE_DIR/serve.log"
    return 1
  fi
  grep -E '^ *(write|read):|err=' "$W/fio/$2.txt"
  ! grep -qE 'err= *[1-9]' "$W/fio/$2.txt"
}
serve_fio() {
  serve_start "$W/fio" --image "$W/fio/disk.img=64M" --image "$W/fio/base.img=64M" --image "$W/fio/cow.img=64M" \
    --device linear "0 131072 linear $W/fio/disk.img 0" \
    --device snap "0 131072 snapshot $W/fio/base.img $W/fio/cow.img P 8"
}
if check "fio-serve" serve_fio; then
  check "fio-attach-linear" nbd_attach linear /dev/nbd0 &&
    check "fio-crc32c-verify-linear-nbd0" fio_verify /dev/nbd0 linear
  nbd_detach /dev/nbd0
  check "fio-attach-snapshot" nbd_attach snap /dev/nbd1 &&
    check "fio-crc32c-verify-snapshot" fio_verify /dev/nbd1 snapshot
  nbd_detach /dev/nbd1
  check "fio-server-stops-cleanly" serve_stop
fi
