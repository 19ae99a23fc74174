#!/usr/bin/env bash
# An in-memory disk with --mem-limit: once its memory is used up, writes
# fail with ENOSPC (not EIO, and nothing already written is lost); a trim
# gives memory back and writes succeed again.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

# (33M: the least that holds one 32 MiB request, which --mem-limit must.)
start_sgblkd mem --size 256M --mem-limit 33M
nbdsh -u "$uri" -c '
import errno, os
blk = 65536
written = {}
i = 0
while True:
    data = os.urandom(blk)                       # incompressible
    try:
        h.pwrite(data, i * blk)
    except nbd.Error as e:
        assert e.errnum == errno.ENOSPC, e.errno
        break
    written[i] = data
    i += 1
    assert i < 1024, "the memory limit was never reached"
print("full after", i, "blocks of 64 KiB")
assert 480 < i < 540
for k, d in written.items():                     # nothing lost
    assert h.pread(blk, k * blk) == d
h.trim(16 * blk, 0)
data = os.urandom(blk)
h.pwrite(data, i * blk)
assert h.pread(blk, i * blk) == data
assert h.pread(blk, 0) == bytes(blk)
print("trim made room")
'
stop_sgblkd mem
