#!/usr/bin/env bash
# Unpacks qemu-utils from Debian's bookworm-backports (qemu 10) into
# node_modules/.cache/qemu-backports, beside the system's qemu-utils rather than over it. Its
# qemu-io and qemu-img are the test suite's NBD client with extended headers
# (NBD_OPT_EXTENDED_HEADERS), which bookworm's own qemu 7.2 and libnbd 1.14 do not have.
# Prints the directory of its binaries. Needs root (apt-get) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=node_modules/.cache/qemu-backports
if [ -x "$dest/usr/bin/qemu-io" ] && "$dest/usr/bin/qemu-io" --version >/dev/null 2>&1; then
  echo "$PWD/$dest/usr/bin"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial"
echo "deb http://deb.debian.org/debian bookworm-backports main" > "$work/sources.list"
# Private package lists: the machine's own apt sources and lists stay as they are.
apt_opts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=- \
  -o Dir::State::Lists="$work/lists" -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
echo "fetching qemu-utils from bookworm-backports (an NBD client with extended headers)" >&2
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq download qemu-utils/bookworm-backports)
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x "$work"/qemu-utils_*.deb "$dest"
if ! "$dest/usr/bin/qemu-io" --version >/dev/null; then
  echo "qemu-io from bookworm-backports does not run here (missing libraries? see ldd $dest/usr/bin/qemu-io)" >&2
  exit 1
fi
echo "$PWD/$dest/usr/bin"
