#!/usr/bin/env bash
# A real filesystem image (mkfs.ext4 -d from files on this machine) copied
# into the in-memory disk with nbdcopy reads back identical, and takes less
# memory than its logical size: the ratio is printed.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdcopy mkfs.ext4 cpio

mkdir "$tmp/stage"
find /usr/include -type f -size -256k 2>/dev/null | sort | head -n 3000 |
  cpio -pdm --quiet "$tmp/stage"
mkfs.ext4 -q -F -d "$tmp/stage" "$tmp/ext4.img" 64M

start_sgblkd mem --size 64M
nbdcopy "$tmp/ext4.img" "$uri"
nbdcopy "$uri" "$tmp/out.img"
cmp "$tmp/ext4.img" "$tmp/out.img" || fail "image read back differs"
kill -USR1 "$pid_mem"
for i in $(seq 50); do grep -q 'memory used' "$tmp/mem.log" && break; sleep 0.1; done
line=$(grep -m1 'memory used' "$tmp/mem.log")
echo "$line"
orig=$(echo "$line" | sed -E 's/.*original ([0-9]+) B.*/\1/')
used=$(echo "$line" | sed -E 's/.*memory used ([0-9]+) B.*/\1/')
du=$(du -B1 --apparent-size "$tmp/ext4.img" | cut -f1)
echo "image $du bytes, $orig bytes held, $used bytes of memory: ratio $(echo "scale=2; $orig / $used" | bc)"
[ "$orig" -gt 0 ] || fail "the cache reports no data"
[ "$used" -lt "$orig" ] || fail "no memory saved by compression"
stop_sgblkd mem
