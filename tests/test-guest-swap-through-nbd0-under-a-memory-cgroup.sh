#!/usr/bin/env bash
# Swap through the kernel's NBD client: in the qemu guest, /dev/nbd0 on
# sgblkd's in-memory disk becomes swap, and a hog in a 64 MiB memory
# cgroup writes and verifies 192 MiB (3 times its limit); the guest's
# pswpout shows the pages went out through nbd0.  Every normal command
# allocation fails meanwhile: the I/O runs on the reserve, and the
# fallback counter shows it.
. "${top_srcdir:-.}/tests/functions.sh"
requires qemu-system-x86_64 gcc modinfo cpio nbd-client mke2fs apt-get
[ -x /bin/busybox ] || skip "busybox-static is not installed"

guest=${top_builddir:-.}/guest
"$top_srcdir/contrib/guest/build-initramfs.sh" "$guest" || skip "cannot build the guest (no kernel package to download?)"

SGBLK_TEST_CMD_FAIL_EVERY=1 start_sgblkd mem --size 512M
timeout 400 qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 512 -smp 2 \
  -nographic -no-reboot -nic none -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
  -append "console=ttyS0 quiet panic=-1 sgblk.step=swap" \
  -device virtio-serial-pci -chardev "socket,id=nbd,path=$sock" \
  -device virtserialport,chardev=nbd,name=nbd </dev/null >"$tmp/boot.log" 2>&1 || true
tr -d '\r' <"$tmp/boot.log" | grep -E 'SGBLK|hog|pswpout|nbd0' || true
grep -q "SGBLK-RESULT FAIL" "$tmp/boot.log" && fail "the swap step failed in the guest"
grep -qE "Kernel panic|Oops|BUG:|hung_task" "$tmp/boot.log" && fail "guest kernel trouble"
grep -q "hog: 192 MiB, 49152 pages, 0 bad words" "$tmp/boot.log" || fail "the hog lost data"
grep -q "SGBLK-RESULT DONE swap" "$tmp/boot.log" || { tail -n 30 "$tmp/boot.log"; fail "the guest did not finish"; }
kill -USR1 "$pid_mem"; sleep 0.5
grep 'cache in-memory' "$tmp/mem.log" | tail -1
line=$(grep 'cmd pool:' "$tmp/mem.log" | tail -1)
echo "$line"
fallbacks=$(echo "$line" | sed -E 's/.*fallbacks ([0-9]+).*/\1/')
echo "$line" | grep -q 'allocated 0 ' || fail "a command came from the normal path"
[ "$fallbacks" -gt 1000 ] || fail "the reserve did not carry the swap traffic ($fallbacks fallbacks)"
stop_sgblkd mem
