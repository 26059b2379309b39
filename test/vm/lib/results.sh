# Reads the results a suite left in its scratch folder (format in test/vm/guest/checks.sh) and
# adds them to the run's totals. A suite that left no exit code did not finish (it hung, the
# kernel panicked, or qemu was killed): that is one more failure, whatever it recorded before.
TOTAL_PASSED=0 TOTAL_FAILED=0 TOTAL_SKIPPED=0
FAILURES=()
SKIPS=()

# vm_collect SUITE SCRATCH_DIR QEMU_STATUS
vm_collect() {
  local suite=$1 dir=$2 qemu_status=$3 kind name rest p f s
  if [ -f "$dir/results" ]; then
    while read -r kind name rest; do
      case $kind in
        pass) TOTAL_PASSED=$((TOTAL_PASSED + 1)) ;;
        fail) TOTAL_FAILED=$((TOTAL_FAILED + 1)); FAILURES+=("$suite/$name: ${rest#* }") ;;
        skip) TOTAL_SKIPPED=$((TOTAL_SKIPPED + 1)); SKIPS+=("$suite/$name: $rest") ;;
        counts)
          read -r p f s _ <<< "$rest"
          TOTAL_PASSED=$((TOTAL_PASSED + p)); TOTAL_FAILED=$((TOTAL_FAILED + f))
          TOTAL_SKIPPED=$((TOTAL_SKIPPED + s))
          [ "$f" -gt 0 ] && FAILURES+=("$suite/$name: $f vector(s) failed")
          [ "$s" -gt 0 ] && SKIPS+=("$suite/$name: $s statement(s) or vector(s) skipped")
          ;;
      esac
    done < "$dir/results"
  fi
  if [ ! -f "$dir/exit-code" ]; then
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    if [ "$qemu_status" -eq 124 ]; then
      FAILURES+=("$suite: timed out (the guest did not power off in time)")
    else
      FAILURES+=("$suite: the guest did not finish (qemu status $qemu_status; see its console log)")
    fi
  fi
}
