#!/usr/bin/env bash
# qemu-img converts an image into a file-backed sgblkd disk and compares
# it, over TCP loopback; qemu's own client checks the content.
. "${top_srcdir:-.}/tests/functions.sh"
requires qemu-img python3

# An image with data and holes.
truncate -s 48M "$tmp/src.raw"
head -c 8M /dev/urandom | dd of="$tmp/src.raw" bs=1M seek=3 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$tmp/src.raw" bs=1M seek=40 conv=notrunc status=none

start_sgblkd_tcp tcp --create --size 48M "$tmp/disk.img"
qemu-img info "$url"
qemu-img convert -n -f raw -O raw "$tmp/src.raw" "$url"
qemu-img compare -f raw -F raw "$tmp/src.raw" "$url" || fail "qemu-img compare found a difference"
# A one-byte difference must be noticed.
cp "$tmp/src.raw" "$tmp/changed.raw"
# (One bit flipped: a byte written as is may already be that byte.)
python3 -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(3 * 1024 * 1024 + 17); b = f.read(1)
f.seek(-1, 1); f.write(bytes([b[0] ^ 0x40]))' "$tmp/changed.raw"
cmp -s "$tmp/src.raw" "$tmp/changed.raw" && fail "test image did not change"
if qemu-img compare -q -f raw -F raw "$tmp/changed.raw" "$url"; then
  fail "qemu-img compare missed a one-byte difference"
fi
stop_sgblkd tcp
# After SIGTERM the file itself holds exactly what was written.
cmp "$tmp/disk.img" "$tmp/src.raw" || fail "the backing file differs after SIGTERM"
