# Boots the kernel under qemu (software emulation) for one suite and waits for it to power off.
# No network device at all (-nodefaults -nic none): the guest talks to the host only through the
# 9p shares. /dev/kvm may exist but Debian's kernel hangs under this machine's KVM, so TCG it is.
# vm_boot SCRATCH_DIR CONSOLE_LOG TIMEOUT_SECONDS   (returns qemu's or timeout's status)
vm_boot() {
  local scratch=$1 log=$2 timeout=$3
  local cmd=(qemu-system-x86_64 -accel tcg -cpu max -m "${DMKIT_VM_MEM:-2G}" -smp "${DMKIT_VM_SMP:-2}"
    -nodefaults -nic none -display none -no-reboot -monitor none -serial stdio
    -kernel "$KERNEL_IMAGE" -initrd "$INITRAMFS"
    # no_timer_check: on a loaded host, TCG can be too slow for the kernel's early check of the
    # timer interrupt, which then panics ("IO-APIC + timer doesn't work").
    -append "console=ttyS0 panic=-1 oops=panic no_timer_check quiet loglevel=3"
    # multidevs=remap: / spans several host filesystems; keeps inode numbers unique in the guest.
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
    -virtfs "local,path=$REPO,mount_tag=repo,security_model=none,readonly=on,multidevs=remap"
    -virtfs "local,path=$scratch,mount_tag=scratch,security_model=none,multidevs=remap")
  # The console goes to the log and, indented, to our output (CI shows the guest's progress).
  timeout --kill-after=10 "$timeout" "${cmd[@]}" < /dev/null 2>&1 | sed -u 's/\r$//' | tee "$log" | sed -u 's/^/  | /'
  return "${PIPESTATUS[0]}"
}
