# Builds the guest's initramfs: busybox-static, the modules that mount the host root over
# virtio-9p, and test/vm/guest/init.sh as /init. Everything else the guest runs (node, dmsetup,
# the other modules) is read from the host root once it is mounted, so the image stays ~1.5 MB.
# vm_build_initramfs KVER OUT_FILE
vm_build_initramfs() {
  local kver=$1 out=$2 tree
  tree=$(mktemp -d "${out%/*}/initramfs.XXXXXX")
  mkdir -p "$tree"/{bin,modules,proc,sys,dev,host}
  cp /bin/busybox "$tree/bin/busybox"
  ln -s busybox "$tree/bin/sh"
  # -a: resolve every name (without it only the first one is), in load order, deduplicated.
  local ko
  : > "$tree/modules.list"
  for ko in $(modprobe -S "$kver" -a --show-depends virtio_pci 9pnet_virtio 9p |
              awk '$1 == "insmod" { print $2 }'); do
    grep -qxF "${ko##*/}" "$tree/modules.list" && continue
    cp "$ko" "$tree/modules/" && echo "${ko##*/}" >> "$tree/modules.list" || return 1
  done
  install -m 0755 "$VM_DIR/guest/init.sh" "$tree/init"
  (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$out" || return 1
  rm -rf "$tree"
}
