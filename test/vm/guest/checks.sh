# Recording results in the guest. One line per result in $OUT/results, read by the host:
#   pass NAME SECONDS
#   fail NAME SECONDS WHY
#   skip NAME WHY
#   counts NAME PASSED FAILED SKIPPED SECONDS   (a vector runner's own tally)
# A check's output goes to the console as it runs, so a failure can be read in the log.

# No forks for timing: under emulation on a busy host every process start costs ~0.3 s.
_now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }
_secs() { printf '%d.%d' $(( $1 / 1000 )) $(( $1 % 1000 / 100 )); }

# check NAME CMD...: runs CMD; passes when it exits 0.
check() {
  local name=$1 t0 rc
  shift
  echo "vm: -- $name"
  t0=$(_now_ms)
  "$@"
  rc=$?
  local secs
  secs=$(_secs $(( $(_now_ms) - t0 )))
  if [ $rc -eq 0 ]; then
    echo "pass $name $secs" >> "$OUT/results"
    echo "vm: PASS $name (${secs}s)"
  else
    echo "fail $name $secs exit status $rc" >> "$OUT/results"
    echo "vm: FAIL $name (${secs}s, exit status $rc)"
  fi
  return $rc
}

# fail_check NAME WHY: a failure found without running a command.
fail_check() {
  echo "fail $1 0 $2" >> "$OUT/results"
  echo "vm: FAIL $1: $2"
}

# skip NAME WHY: not run, and said so; never counted as passed.
skip() {
  echo "skip $1 $2" >> "$OUT/results"
  echo "vm: SKIP $1: $2"
}

# check_vectors NAME CMD...: runs a vector runner and takes over its closing tally
# "N passed, M failed[, K skipped]". A runner that ends without a tally counts as one failure.
check_vectors() {
  local name=$1 t0 rc log tally
  shift
  echo "vm: -- $name"
  log=$(mktemp)
  t0=$(_now_ms)
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local secs
  secs=$(_secs $(( $(_now_ms) - t0 )))
  tally=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  rm -f "$log"
  if [ -z "$tally" ]; then
    echo "fail $name $secs the runner ended (exit status $rc) without a tally" >> "$OUT/results"
    echo "vm: FAIL $name: no tally"
    return 1
  fi
  local p f s
  p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<< "$tally")
  f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<< "$tally")
  s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<< "$tally")
  # A runner that says "0 failed" but exits non-zero still failed somewhere.
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  echo "counts $name $p $f ${s:-0} $secs" >> "$OUT/results"
  echo "vm: $name: $tally (${secs}s)"
  [ "$f" -eq 0 ]
}

# timed NAME CMD...: runs CMD and prints how long it took (no result recorded).
timed() {
  local name=$1 t0 rc
  shift
  t0=$(_now_ms)
  "$@"
  rc=$?
  echo "vm: time $name $(_secs $(( $(_now_ms) - t0 )))s"
  return $rc
}

# load_dmkit_module: the modules dm-dmkit.ko depends on (as its own modinfo lists them; insmod
# does not resolve them), then the module itself from the scratch share.
load_dmkit_module() {
  local deps
  deps=$(modinfo -F depends "$OUT/dm-dmkit.ko" | tr ',' ' ')
  modprobe -a loop dm-mod $deps && insmod "$OUT/dm-dmkit.ko"
}
