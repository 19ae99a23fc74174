#!/usr/bin/env bash
# Requests past the end get the errors the NBD spec names: ENOSPC for a
# write, EINVAL for a read; the disk is unchanged and keeps serving.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

start_sgblkd mem --size 1M
nbdsh -u "$uri" -c "$nbd_expect" -c '
import errno
h.set_strict_mode(0)          # let the server, not libnbd, judge
size = h.get_size()
assert size == 1048576
h.pwrite(b"\x5a" * 4096, size - 4096)

expect(errno.ENOSPC, h.pwrite, b"x" * 4096, size)            # wholly past
expect(errno.ENOSPC, h.pwrite, b"x" * 8192, size - 4096)     # straddling
expect(errno.ENOSPC, h.zero, 4096, size)
expect(errno.ENOSPC, h.trim, 4096, size)
expect(errno.EINVAL, h.pread, 4096, size)
expect(errno.EINVAL, h.pread, 8192, size - 4096)
expect(errno.EINVAL, h.pread, 512, 2**63 - 256)              # offset overflow
# Nothing changed, the connection is still good.
assert h.pread(4096, size - 4096) == b"\x5a" * 4096
print("past-end errors as specified")
'
stop_sgblkd mem
