# Builds the kmod-port kernel module (dm-dmkit.ko, kbuild file kmod-port/Kbuild) against the VM
# kernel's headers. The sources are copied into the work folder first, without the build
# products a developer's own build may have left in kmod-port/ (a copy would make those look
# newer than their sources), so the build leaves nothing in the checkout.
# vm_build_module KVER WORK_DIR: sets MODULE (path of the .ko), or MODULE_MISSING (why not) and
# returns 0 when there is no module source yet; returns 1 when a build that should work fails.
vm_build_module() {
  local kver=$1 work=$2 src="$REPO/kmod-port"
  MODULE="" MODULE_MISSING=""
  if [ ! -f "$src/Kbuild" ]; then
    MODULE_MISSING="module not built yet (no kmod-port/Kbuild)"
    return 0
  fi
  rm -rf "$work/kmod-port" && mkdir -p "$work/kmod-port" &&
    tar -C "$src" --exclude='*.o' --exclude='*.ko' --exclude='*.mod' --exclude='*.mod.c' \
      --exclude='.*.cmd' --exclude='.*.d' --exclude=Module.symvers --exclude=modules.order \
      --exclude=./build -cf - . | tar -C "$work/kmod-port" -xf - || return 1
  if ! make -s -C "/lib/modules/$kver/build" M="$work/kmod-port" modules > "$work/module-build.log" 2>&1; then
    sed 's/^/  kbuild: /' "$work/module-build.log" >&2
    echo "vm: building dm-dmkit.ko from kmod-port/ failed" >&2
    return 1
  fi
  MODULE=$work/kmod-port/dm-dmkit.ko
  [ -f "$MODULE" ] || { echo "vm: the kmod-port build made no dm-dmkit.ko" >&2; return 1; }
}
