modprobe nbd
for round in 1 2 3 4 5 6; do
  for mode in nbdclient dmkit; do
    before=$(dmesg | grep -c "timed out")
    t0=$(date +%s)
    if [ $mode = dmkit ]; then DEVCONN=2 DMKIT_VM_ATTACH=dmkit node $REPO/test/vm/guest/nbd-vectors.js concurrent-io-many > /tmp/o.txt 2>&1
    else DEVCONN=2 node $REPO/test/vm/guest/nbd-vectors.js concurrent-io-many > /tmp/o.txt 2>&1; fi
    after=$(dmesg | grep -c "timed out")
    echo "RESULT round=$round mode=$mode secs=$(( $(date +%s) - t0 )) timeouts=$((after - before)) $(tail -1 /tmp/o.txt)"
  done
done
dmesg | grep -i "nbd" | grep -v capacity | tail -20
