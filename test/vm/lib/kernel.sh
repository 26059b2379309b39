# Finds the kernel the VM boots: the one Debian's linux-image-amd64 metapackage points at (Debian
# moves it forward; the running host kernel is irrelevant). Sets KVER, KERNEL_IMAGE, KERNEL_BUILD.
vm_find_kernel() {
  KVER=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null |
         grep -o 'linux-image-[0-9][^ ,]*' | head -1 | sed 's/^linux-image-//')
  if [ -z "$KVER" ]; then
    echo "vm: cannot tell the kernel version from the linux-image-amd64 package" >&2; return 1
  fi
  KERNEL_IMAGE=/boot/vmlinuz-$KVER
  KERNEL_BUILD=/lib/modules/$KVER/build
  if [ ! -r "$KERNEL_IMAGE" ]; then echo "vm: $KERNEL_IMAGE is missing or unreadable" >&2; return 1; fi
  if [ ! -e "$KERNEL_BUILD/Makefile" ]; then
    echo "vm: headers for $KVER are missing ($KERNEL_BUILD); linux-headers-amd64 must match linux-image-amd64" >&2
    return 1
  fi
}
