#!/usr/bin/env bash
# Installs the Debian packages the VM harness needs, skipping those already installed.
# The kernel and its headers come from the linux-image-amd64 / linux-headers-amd64
# metapackages; INITRD=No keeps the kernel's postinst from building /boot/initrd.img,
# which we never boot (we build our own tiny initramfs), saving about 20 s.
set -euo pipefail
PKGS=(qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static
      nbd-client dmsetup socat kmod e2fsprogs fio cpio)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || { echo "vm: need root to apt-get install ${missing[*]}" >&2; exit 1; }
echo "vm: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=${TMPDIR:-/tmp}/dmkit-vm-apt.log
# --no-install-recommends keeps qemu from pulling firmware and GUI bits.
if ! { timeout 300 apt-get update -qq &&
       INITRD=No timeout 600 apt-get install --no-install-recommends -y -q "${missing[@]}"; } >"$log" 2>&1; then
  tail -30 "$log" >&2
  echo "vm: apt-get install failed (log: $log)" >&2
  exit 1
fi
