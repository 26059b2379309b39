# Every golden vector whose targets Debian's kernel has, through Linux's own targets: the oracle
# the model and the core are judged by (test/vectors/runners/linux.js).
export DMKIT_REQUIRE_KERNEL=1
check "modprobe-dm-targets" modprobe -a loop dm-mod dm-snapshot dm-zero dm-flakey dm-delay
check_vectors "vectors-linux" node "$REPO/test/vectors/run.js" linux $VECTOR_FILTER
