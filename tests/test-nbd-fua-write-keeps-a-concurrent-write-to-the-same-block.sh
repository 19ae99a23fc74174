#!/usr/bin/env bash
# A FUA write and a plain write to two sectors of one cache block, both in
# flight at once, both land: the FUA write goes straight to the file, and
# the cache must not throw away the plain write it took meanwhile.  Every
# cache block of a 64 MiB file gets such a pair, on its first and second
# sectors; both sectors then read back with the new data over NBD, and,
# after a FLUSH and a clean SIGTERM, from the file itself.  Once with the
# default 4 KiB cache blocks, once with 64 KiB ones.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

# A sector's data names its cache block, the sector and the cache block
# size, so that nothing left from another block or run can pass for it.
# bad_blocks reads the disk a MiB at a time with read(offset, length).
check='
import struct
def sector(i, s, bs):
    return struct.pack("<QQQQ", 0x5345435430 + s, i, bs, 0x4e4257) * (512 // 32)
def bad_blocks(read, bs):
    bad = []
    for off in range(0, 64 << 20, 1 << 20):
        data = read(off, 1 << 20)
        for b in range(0, 1 << 20, bs):
            i = (off + b) // bs
            if data[b:b + 1024] != sector(i, 0, bs) + sector(i, 1, bs):
                bad.append(i)
    return bad
def report(bad, bs, where):
    print("cache block %d KiB: %d of %d blocks %s lack a write%s"
          % (bs // 1024, len(bad), (64 << 20) // bs, where,
             (", the first: %s" % bad[:8]) if bad else ""))
    open("'"$tmp"'/bad", "w").write(str(len(bad)))
'

failures=()
for kib in 4 64; do
  bs=$((kib * 1024))
  rm -f "$tmp/disk.img"
  start_sgblkd "cache$kib" --create --size 64M --cache-block "${kib}K" "$tmp/disk.img"
  nbdsh -u "$uri" -c "$check" -c '
bs = '"$bs"'
# The pairs of 16 blocks at a time (one at a time takes twice as long):
# all queued before any is sent, all awaited.
for first in range(0, h.get_size() // bs, 16):
    for i in range(first, first + 16):
        h.aio_pwrite(sector(i, 0, bs), i * bs, flags=nbd.CMD_FLAG_FUA)
        h.aio_pwrite(sector(i, 1, bs), i * bs + 512)
    while h.aio_in_flight() > 0:
        h.poll(-1)
report(bad_blocks(lambda off, n: h.pread(n, off), bs), bs, "read back over NBD")
h.flush()
'
  [ "$(cat "$tmp/bad")" -eq 0 ] ||
    failures+=("with ${kib} KiB cache blocks, NBD reads lack acknowledged writes")
  stop_sgblkd "cache$kib"

  python3 -c "$check"'
import os
fd = os.open("'"$tmp"'/disk.img", os.O_RDONLY)
report(bad_blocks(lambda off, n: os.pread(fd, n, off), '"$bs"'), '"$bs"',
       "of the file, after FLUSH and SIGTERM,")
'
  [ "$(cat "$tmp/bad")" -eq 0 ] ||
    failures+=("with ${kib} KiB cache blocks, the file lacks acknowledged, flushed writes")
done
[ ${#failures[@]} -eq 0 ] || fail "$(printf '%s; ' "${failures[@]}" | sed 's/; $//')"
