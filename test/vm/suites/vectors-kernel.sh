# Every golden vector through the kmod-port's dmkit-* targets (test/vectors/runners/kernel.js),
# and a device event from a snapshot whose COW device fills, the port's as Linux's own.
export DMKIT_REQUIRE_KERNEL=1
W=/tmp/vectors-kernel
mkdir -p "$W"

# A snapshot whose COW device fills goes Invalid and raises one device event (dm_table_event:
# dmsetup info's event number). PREFIX: "" for Linux's target, "dmkit-" for the port's.
cow_full_raises_event() {  # cow_full_raises_event PREFIX
  local name="ev-${1:-linux-}" o c status events ok=0
  name=${name%-}
  rm -f "$W/origin.img" "$W/cow.img"
  truncate -s 4M "$W/origin.img"
  truncate -s 32K "$W/cow.img"   # header chunk, one metadata area, 6 chunks of 8 sectors
  o=$(losetup -f --show "$W/origin.img") && c=$(losetup -f --show "$W/cow.img") || return 1
  if dmsetup create "$name" --table "0 8192 ${1}snapshot $o $c P 8"; then
    events=$(dmsetup info -c --noheadings -o events "$name")
    [ "$events" = 0 ] || { echo "event number $events before any write"; ok=1; }
    # 16 chunks written, 6 fit: the snapshot goes Invalid and later writes fail.
    dd if=/dev/urandom of="/dev/mapper/$name" bs=4K count=16 oflag=direct status=none 2> /dev/null
    status=$(dmsetup status "$name")
    events=$(dmsetup info -c --noheadings -o events "$name")
    echo "$name: status '$status', event number $events"
    [[ "$status" == *Invalid* ]] || { echo "not Invalid"; ok=1; }
    [ "$events" = 1 ] || { echo "event number $events, expected 1"; ok=1; }
    dmsetup remove "$name" || ok=1
  else
    ok=1
  fi
  losetup -d "$o" "$c"
  return $ok
}

if [ ! -f "$OUT/dm-dmkit.ko" ]; then
  skip "vectors-kernel" "${MODULE_MISSING:-module not built}"
else
  check "load-dm-dmkit" load_dmkit_module &&
    check_vectors "vectors-kernel" node "$REPO/test/vectors/run.js" kernel $VECTOR_FILTER
  check "cow-full-raises-event-linux" cow_full_raises_event ""
  check "cow-full-raises-event-dmkit" cow_full_raises_event dmkit-
  # Unloading proves the module leaves nothing behind (no leaked device, no stuck reference).
  check "rmmod-dm-dmkit" rmmod dm_dmkit
fi
