# Every golden vector through the kmod-port's dmkit-* targets (test/vectors/runners/kernel.js).
export DMKIT_REQUIRE_KERNEL=1
if [ ! -f "$OUT/dm-dmkit.ko" ]; then
  skip "vectors-kernel" "${MODULE_MISSING:-module not built}"
else
  check "modprobe-dm-mod-loop" modprobe -a loop dm-mod dm-bufio dm-io dm-kcopyd
  check "insmod-dm-dmkit" insmod "$OUT/dm-dmkit.ko" &&
    check_vectors "vectors-kernel" node "$REPO/test/vectors/run.js" kernel
  # Unloading proves the module leaves nothing behind (no leaked device, no stuck reference).
  check "rmmod-dm-dmkit" rmmod dm_dmkit
fi
