#!/usr/bin/env bash
# A store that fails for a window of calls (the fault store of the test
# daemon): NBD and FUSE clients get EIO for what falls in the window, and
# what was written before and after it is intact -- on a file without a
# cache, behind the write-back cache, and on the in-memory disk.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh dd
requires_test_hooks

more='
import time
def block(i):
    return bytes([i + 1]) * 4096
'
# byte_at FILE OFFSET: the byte there, in decimal.
byte_at () { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }

# No cache: each request is one store call.  Writes 3 and 4 fail, as do
# the first read and the first flush; the rest is the file's.
truncate -s 4M "$tmp/off.img"
SGBLK_TEST_STORE_FAULT='write:after=2:count=2,read:count=1,flush:count=1' \
  start_sgblkd off --cache-mode off "$tmp/off.img"
nbdsh -u "$uri" -c "$nbd_expect" -c "$more" -c '
for i in range(6):
    if i in (2, 3): expect(errno.EIO, h.pwrite, block(i), i * 4096)
    else: h.pwrite(block(i), i * 4096)
expect(errno.EIO, h.pread, 4096, 0)
expect(errno.EIO, h.flush)
h.flush()
for i in range(6):
    assert h.pread(4096, i * 4096) == (bytes(4096) if i in (2, 3) else block(i)), i
'
stop_sgblkd off
for i in 0 1 4 5; do [ "$(byte_at "$tmp/off.img" $((i * 4096 + 4095)))" = $((i + 1)) ]; done
[ "$(byte_at "$tmp/off.img" $((2 * 4096)))" = 0 ] || fail "a failed write reached the file"
echo "no cache: EIO inside the window, data outside it intact"

# Write-back cache: a write lands in the cache; its write-back fails (the
# flusher may take one of the three failures), so FLUSH fails with EIO and
# the block stays dirty until a FLUSH after the window writes it.  A read
# miss goes to the file: the first one fails.
random_file "$tmp/wb.img" 4
SGBLK_TEST_STORE_FAULT='write:count=3,read:count=1' start_sgblkd wb "$tmp/wb.img"
nbdsh -u "$uri" -c "$nbd_expect" -c "$more" -c '
expect(errno.EIO, h.pread, 4096, 1 << 20)
want = open("'"$tmp/wb.img"'", "rb").read()
assert h.pread(8192, 1 << 20) == want[1 << 20:(1 << 20) + 8192]
h.pwrite(block(0), 0)
expect(errno.EIO, h.flush)
for t in range(20):
    try:
        h.flush()
        break
    except nbd.Error as e:
        assert e.errnum == errno.EIO
        time.sleep(0.2)
else:
    raise AssertionError("FLUSH still fails after the window")
h.pwrite(block(2), 8192)
h.flush()
assert h.pread(4096, 0) == block(0) and h.pread(4096, 8192) == block(2)
'
stop_sgblkd wb
[ "$(byte_at "$tmp/wb.img" 4095)" = 1 ] && [ "$(byte_at "$tmp/wb.img" 8192)" = 3 ] ||
  fail "the write-back cache lost a write that FLUSH acknowledged"
echo "write-back: FLUSH fails inside the window, the dirty block is written after it"

# The in-memory disk: nothing is below it, so the fault store is over it.
# NBD first, then FUSE (direct I/O: each dd block is one store call).
requires_fuse_and_loop
fuse_mountpoint
SGBLK_TEST_STORE_FAULT='write:after=1:count=1,read:after=1:count=1' \
  start_sgblkd mem --size 4M --fuse "$mnt"
nbdsh -u "$uri" -c "$nbd_expect" -c "$more" -c '
h.pwrite(block(0), 0)
expect(errno.EIO, h.pwrite, block(1), 4096)
h.pwrite(block(2), 8192)
assert h.pread(4096, 0) == block(0)
expect(errno.EIO, h.pread, 4096, 8192)
assert h.pread(4096, 8192) == block(2) and h.pread(4096, 4096) == bytes(4096)
'
stop_sgblkd mem
SGBLK_TEST_STORE_FAULT='write:after=1:count=1,read:count=1' \
  start_sgblkd fuse --size 4M --fuse "$mnt"
head -c 4096 /dev/urandom >"$tmp/a"
head -c 4096 /dev/urandom >"$tmp/b"
dd if="$tmp/a" of="$mnt/disk" bs=4096 conv=notrunc status=none
! dd if="$tmp/b" of="$mnt/disk" bs=4096 seek=1 conv=notrunc status=none 2>"$tmp/dd.err" ||
  fail "a FUSE write inside the window succeeded"
grep -q "Input/output error" "$tmp/dd.err" || { cat "$tmp/dd.err"; fail "the FUSE write did not get EIO"; }
dd if="$tmp/b" of="$mnt/disk" bs=4096 seek=2 conv=notrunc status=none
! dd if="$mnt/disk" of=/dev/null bs=4096 count=1 status=none 2>"$tmp/dd.err" ||
  fail "a FUSE read inside the window succeeded"
grep -q "Input/output error" "$tmp/dd.err" || { cat "$tmp/dd.err"; fail "the FUSE read did not get EIO"; }
dd if="$mnt/disk" of="$tmp/got" bs=4096 count=3 status=none
cmp <(cat "$tmp/a"; head -c 4096 /dev/zero; cat "$tmp/b") "$tmp/got" ||
  fail "FUSE: data outside the window is not what was written"
stop_sgblkd fuse
echo "in-memory disk: NBD and FUSE get EIO inside the window, data outside it intact"
