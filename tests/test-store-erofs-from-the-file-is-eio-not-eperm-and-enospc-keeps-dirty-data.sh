#!/usr/bin/env bash
# EROFS from the backing file (its filesystem went read-only) reaches NBD
# clients as EIO, with a log line saying why, not as EPERM, which they
# take for a read-only export.  ENOSPC while writing back keeps the data
# dirty and fails FLUSH with ENOSPC until there is room.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh
requires_test_hooks

more='
import time
'
truncate -s 4M "$tmp/disk.img"

# Without a cache the write itself fails; behind the write-back cache the
# FLUSH that writes it back.
SGBLK_TEST_STORE_FAULT='write:errno=EROFS,zero:errno=EROFS,flush:count=2:errno=EROFS' \
  start_sgblkd off --cache-mode off "$tmp/disk.img"
nbdsh -u "$uri" -c "$nbd_expect" -c "$more" -c '
assert not h.is_read_only()
expect(errno.EIO, h.pwrite, b"x" * 4096, 0)
expect(errno.EIO, h.zero, 4096, 0)
expect(errno.EIO, h.flush)
assert h.pread(4096, 0) == bytes(4096)
time.sleep(1.5)               # the daemon reports once a second
'
SGBLK_TEST_STORE_FAULT='write:errno=EROFS' start_sgblkd wb "$tmp/disk.img"
nbdsh -u "$uri" -c "$nbd_expect" -c "$more" -c '
h.pwrite(b"x" * 4096, 0)
expect(errno.EIO, h.flush)
time.sleep(1.5)
'
for name in off wb; do
  grep -q "store errors\? answered with EIO (last: .*Read-only file system); the file's filesystem is read-only" "$tmp/$name.log" ||
    { cat "$tmp/$name.log"; fail "$name: no log line says the file's filesystem is read-only"; }
done
stop_sgblkd off
# The cache cannot write its dirty block back at exit: it says so, and
# exits 1.
kill -TERM "$pid_wb"
wait "$pid_wb" && fail "sgblkd exited 0 with a dirty block it could not write"
grep -q "final flush failed" "$tmp/wb.log" || fail "no word of the failed final flush"
echo "EROFS: EIO to clients, and the log says why"

# ENOSPC in write-back: FLUSH fails with ENOSPC (the flusher may take one
# of the three failures), the block stays dirty, a later FLUSH writes it.
SGBLK_TEST_STORE_FAULT='write:count=3:errno=ENOSPC' start_sgblkd full "$tmp/disk.img"
nbdsh -u "$uri" -c "$nbd_expect" -c "$more" -c '
h.pwrite(b"\x42" * 4096, 8192)
expect(errno.ENOSPC, h.flush)
assert h.pread(4096, 8192) == b"\x42" * 4096
for t in range(20):
    try:
        h.flush()
        break
    except nbd.Error as e:
        assert e.errnum == errno.ENOSPC
        time.sleep(0.2)
else:
    raise AssertionError("FLUSH still fails after the window")
'
stop_sgblkd full
[ "$(od -An -tu1 -j 8192 -N1 "$tmp/disk.img" | tr -d ' ')" = 66 ] ||
  fail "the block written back after ENOSPC is not in the file"
echo "ENOSPC: FLUSH fails, the dirty block is kept and written later"
