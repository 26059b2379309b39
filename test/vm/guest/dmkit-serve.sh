# `dmkit serve` in the guest and its exports as kernel block devices (nbd.ko via nbd-client).
# One server at a time: serve_start records its pid and folder for the other functions.

# serve_start DIR ARGS...: starts `dmkit serve ARGS` on DIR/nbd.sock (control: DIR/control.sock)
# and returns once it listens; fails, showing its log, if it exits first.
serve_start() {
  SERVE_DIR=$1; shift
  rm -f "$SERVE_DIR/nbd.sock"
  node "$REPO/bin/dmkit.js" serve --socket "$SERVE_DIR/nbd.sock" --control "$SERVE_DIR/control.sock" \
    "$@" > "$SERVE_DIR/serve.log" 2>&1 &
  SERVE_PID=$!
  local i
  for i in $(seq 600); do
    [ -S "$SERVE_DIR/nbd.sock" ] && return 0
    kill -0 "$SERVE_PID" 2> /dev/null || break
    sleep 0.1
  done
  echo "dmkit serve did not start listening:"; cat "$SERVE_DIR/serve.log"
  kill "$SERVE_PID" 2> /dev/null; wait "$SERVE_PID" 2> /dev/null
  SERVE_PID=""
  return 1
}

# serve_stop: SIGTERM, as a service manager would; passes only on a clean exit (every file
# flushed and closed).
serve_stop() {
  [ -n "${SERVE_PID:-}" ] || return 1
  kill -TERM "$SERVE_PID"
  wait "$SERVE_PID"
  local rc=$?
  SERVE_PID=""
  [ $rc -eq 0 ] || { echo "dmkit serve exited with status $rc:"; cat "$SERVE_DIR/serve.log"; }
  return $rc
}

# dmkit_ctl VERB ARGS...: dmsetup's verbs against the running server.
dmkit_ctl() {
  node "$REPO/bin/dmkit.js" "$@" --control "$SERVE_DIR/control.sock"
}

# nbd_attach EXPORT DEV: the export as a kernel block device.
nbd_attach() {
  nbd-client -u "$SERVE_DIR/nbd.sock" "$2" -N "$1" -b 512 > /dev/null
}

nbd_detach() {
  nbd-client -d "$1" > /dev/null
}

# sha_of DEV_OR_FILE: SHA-256 of the whole thing, read past the page cache for devices.
sha_of() {
  if [ -b "$1" ]; then dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1
  else sha256sum < "$1" | cut -d' ' -f1; fi
}

# same WHAT GOT WANT: passes when equal, else says what differs.
same() {
  [ "$2" = "$3" ] && return 0
  echo "$1 differs: got '$2', expected '$3'"
  return 1
}
