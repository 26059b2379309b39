#!/usr/bin/env bash
# Installs the Debian packages the test suite drives as real peers (listed in .ci/apt-packages),
# skipping the ones already present, and unpacks qemu-utils from bookworm-backports
# (scripts/fetch-qemu-backports.sh). Needs root (or sudo) when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' .ci/apt-packages)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test peers: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# qemu 10's client, for extended headers (unpacked beside the system's qemu, not installed).
$SUDO bash scripts/fetch-qemu-backports.sh >/dev/null
