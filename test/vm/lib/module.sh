# Builds the kmod-port kernel module (dm-dmkit.ko) against the VM kernel's headers.
# The module's kbuild folder is the folder under kmod-port/ holding a Kbuild file (or a Makefile
# with obj-m). The whole kmod-port tree is copied into the work folder first, so that the build
# leaves no objects in the checkout and relative includes still resolve.
# vm_build_module KVER WORK_DIR: sets MODULE (path of the .ko), or MODULE_MISSING (why not) and
# returns 0 when there is no module source yet; returns 1 when a build that should work fails.
vm_build_module() {
  local kver=$1 work=$2 src="$REPO/kmod-port" kbuild rel
  MODULE="" MODULE_MISSING=""
  if [ ! -d "$src" ]; then MODULE_MISSING="module not built yet (no kmod-port/)"; return 0; fi
  kbuild=$(find "$src" -name Kbuild -printf '%h\n' | sort | head -1)
  if [ -z "$kbuild" ]; then
    kbuild=$(grep -l 'obj-m' $(find "$src" -name Makefile) 2>/dev/null | head -1)
    kbuild=${kbuild%/Makefile}
  fi
  if [ -z "$kbuild" ]; then
    MODULE_MISSING="module not built yet (kmod-port/ has no Kbuild file)"; return 0
  fi
  rel=${kbuild#"$src"}
  rm -rf "$work/kmod-port" && cp -r "$src" "$work/kmod-port" || return 1
  if ! make -s -C "/lib/modules/$kver/build" M="$work/kmod-port$rel" modules > "$work/module-build.log" 2>&1; then
    sed 's/^/  kbuild: /' "$work/module-build.log" >&2
    echo "vm: building the module in kmod-port$rel failed" >&2
    return 1
  fi
  MODULE=$(find "$work/kmod-port$rel" -name 'dm-dmkit.ko' | head -1)
  if [ -z "$MODULE" ]; then
    echo "vm: the kmod-port build made no dm-dmkit.ko" >&2; return 1
  fi
}
