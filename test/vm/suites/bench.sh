# Throughput of the kmod-port's targets against Linux's own, on ram disks (brd) so the backing
# device costs next to nothing: dmkit-linear vs linear, dmkit-snapshot vs snapshot, with fio.
# Each workload runs for both targets back to back, in two rounds (Linux first, then dmkit
# first) to even out drift; bench/vm.js reads $OUT/bench.txt and prints the ratios.
# Not part of `npm run test:vm`: run it with `npm run bench -- vm`.
if [ ! -f "$OUT/dm-dmkit.ko" ]; then
  skip "bench" "${MODULE_MISSING:-module not built}"
  return 0
fi
SECTORS=262144      # 128 MiB devices
RUNTIME=${BENCH_FIO_SECONDS:-4}
check "bench-load-modules" modprobe -a dm-mod dm-snapshot && check "bench-load-dm-dmkit" load_dmkit_module || return 0
# rd_size is in KiB: two 256 MiB ram disks (origin and COW).
rmmod brd 2> /dev/null; modprobe brd rd_nr=2 rd_size=262144 || { fail_check bench-brd "no ram disks"; return 0; }
mkdir -p /tmp/bench && cd /tmp/bench || return 0

# fio_one KIND TARGET WORKLOAD DEV: one timed fio run; appends "KIND TARGET WORKLOAD IOPS BYTES/S".
fio_one() {
  local kind=$1 target=$2 workload=$3 dev=$4 rw bs
  case $workload in
    randread-4k) rw=randread bs=4k ;; randwrite-4k) rw=randwrite bs=4k ;;
    read-1m) rw=read bs=1m ;; write-1m) rw=write bs=1m ;;
  esac
  fio --name=b --filename="$dev" --rw=$rw --bs=$bs --ioengine=libaio --iodepth=16 --direct=1 \
    --time_based --runtime="$RUNTIME" --size=$((SECTORS / 2))k --output-format=json --output=fio.json > /dev/null ||
    return 1
  node -e '
    const j = JSON.parse(require("fs").readFileSync("fio.json", "utf8")).jobs[0];
    const side = j.read.io_bytes > 0 ? j.read : j.write;
    console.log(`${process.argv[1]} ${Math.round(side.iops)} ${side.bw_bytes}`);
  ' "$kind $target $workload" >> "$OUT/bench.txt"
  tail -1 "$OUT/bench.txt"
}

# device KIND TABLE_TARGET ARGS: the bench device, with Linux's or the module's target.
device() {
  local kind=$1 target=$2; shift 2
  [ "$kind" = dmkit ] && target=dmkit-$target
  dmsetup create bench --table "0 $SECTORS $target $*"
}

bench_linear() {  # bench_linear KIND
  device "$1" linear /dev/ram0 0 || return 1
  local w ok=0
  for w in randread-4k randwrite-4k read-1m write-1m; do fio_one "$1" linear $w /dev/mapper/bench || ok=1; done
  dmsetup remove bench
  return $ok
}

# Snapshot writes: 8 KiB chunks, so every 4 KiB write to a fresh chunk copies it first.
bench_snapshot() {  # bench_snapshot KIND
  local w ok=0
  for w in randwrite-4k randread-4k; do
    # A zeroed header starts a new snapshot: each run begins with an empty COW.
    dd if=/dev/zero of=/dev/ram1 bs=1M count=1 oflag=direct status=none &&
      device "$1" snapshot /dev/ram0 /dev/ram1 P 16 || return 1
    fio_one "$1" snapshot $w /dev/mapper/bench || ok=1
    dmsetup remove bench
  done
  return $ok
}

# Fill the origin once so reads see data, not zero pages brd never allocated.
dd if=/dev/urandom of=/dev/ram0 bs=1M count=$((SECTORS / 2048)) oflag=direct status=none
: > "$OUT/bench.txt"
for round in 1 2; do
  order="linux dmkit"; [ $round = 2 ] && order="dmkit linux"
  for kind in $order; do
    check "bench-linear-$kind-round$round" bench_linear $kind
    check "bench-snapshot-$kind-round$round" bench_snapshot $kind
  done
done
check "bench-rmmod-dm-dmkit" rmmod dm_dmkit
