#!/usr/bin/env bash
# The kernel's own NBD client, for real: a qemu guest (TCG) built from
# Debian's kernel, busybox and nbd-client connects to sgblkd through a
# virtio-serial port bridged to a Unix socket, makes and checks an ext4
# filesystem, and disconnects; a second boot, against a restarted daemon
# on the same file, checks every file's checksum.
. "${top_srcdir:-.}/tests/functions.sh"
requires qemu-system-x86_64 gcc modinfo cpio nbd-client mke2fs apt-get
[ -x /bin/busybox ] || skip "busybox-static is not installed"

guest=${top_builddir:-.}/guest
"$top_srcdir/contrib/guest/build-initramfs.sh" "$guest" || skip "cannot build the guest (no kernel package to download?)"

boot ()   # STEP SOCKET
{
  timeout 240 qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 512 -smp 2 \
    -nographic -no-reboot -nic none -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
    -append "console=ttyS0 quiet panic=-1 sgblk.step=$1" \
    -device virtio-serial-pci -chardev "socket,id=nbd,path=$2" \
    -device virtserialport,chardev=nbd,name=nbd </dev/null >"$tmp/boot-$1.log" 2>&1 || true
  tr -d '\r' <"$tmp/boot-$1.log" | grep -E 'SGBLK|nbd0|files' || true
  grep -q "SGBLK-RESULT FAIL" "$tmp/boot-$1.log" && fail "guest step $1 failed"
  grep -qE "Kernel panic|Oops|BUG:" "$tmp/boot-$1.log" && fail "guest kernel trouble in step $1"
  grep -q "SGBLK-RESULT DONE $1" "$tmp/boot-$1.log" || { tail -n 30 "$tmp/boot-$1.log"; fail "guest step $1 did not finish"; }
}

start_sgblkd first --create --size 256M "$tmp/disk.img"
boot mkfs "$sock"
stop_sgblkd first
start_sgblkd second "$tmp/disk.img"
boot check "$sock"
stop_sgblkd second
