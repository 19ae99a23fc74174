#!/usr/bin/env bash
# The kernel discards a whole device in one request when mkfs runs: TRIM,
# WRITE_ZEROES, CACHE and BLOCK_STATUS over 3 GiB in one request succeed
# (split inside the daemon), and the data reads back as zeroes.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

start_sgblkd mem --size 3G
nbdsh --base-allocation -u "$uri" -c '
size = h.get_size()
one = 3 * 1024 * 1024 * 1024 - 4096          # largest 32-bit multiple of 4096 below the size
for off in (0, 1 << 30, size - 8192):
    h.pwrite(b"\xa5" * 8192, off)
h.trim(one, 0)
assert h.pread(8192, 0) == bytes(8192)
assert h.pread(8192, 1 << 30) == bytes(8192)
for off in (0, 1 << 30):
    h.pwrite(b"\xa5" * 8192, off)
h.zero(one, 0)
assert h.pread(8192, 1 << 30) == bytes(8192)
h.zero(one, 0, nbd.CMD_FLAG_NO_HOLE)
h.cache(one, 0)
extents = []
h.block_status(one, 0, lambda ctx, off, ents, err: extents.extend(ents) or 0)
print("extents:", extents[:8])
assert sum(extents[0::2]) > 0
h.flush()
print("whole-device requests served")
'
stop_sgblkd mem
