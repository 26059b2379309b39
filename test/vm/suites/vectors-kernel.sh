# Every golden vector through the kmod-port's dmkit-* targets (test/vectors/runners/kernel.js).
export DMKIT_REQUIRE_KERNEL=1
if [ ! -f "$OUT/dm-dmkit.ko" ]; then
  skip "vectors-kernel" "${MODULE_MISSING:-module not built}"
else
  check "load-dm-dmkit" load_dmkit_module &&
    check_vectors "vectors-kernel" node "$REPO/test/vectors/run.js" kernel $VECTOR_FILTER
  # Unloading proves the module leaves nothing behind (no leaked device, no stuck reference).
  check "rmmod-dm-dmkit" rmmod dm_dmkit
fi
