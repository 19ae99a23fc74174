#!/usr/bin/env bash
# One export's store fails every read and write (the test daemon's fault
# store) while another export of the same daemon is written and read back
# at the same time: the failing export's clients get EIO, the other's
# data round-trips, and the daemon exits 0 with the good export flushed.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdcopy nbdsh
requires_test_hooks

truncate -s 64M "$tmp/bad.img" "$tmp/good.img"
cat >"$tmp/sgblkd.conf" <<CONF
[bad]
file = $tmp/bad.img
cache-mode = off

[good]
file = $tmp/good.img
CONF
SGBLK_TEST_STORE_FAULT='read:count=1000000,write:count=1000000' \
  SGBLK_TEST_STORE_FAULT_EXPORT=bad start_sgblkd cfg --config "$tmp/sgblkd.conf"
sock=$tmp/cfg.sock

random_file "$tmp/in" 48
# The failing export is hammered while the good one copies 48 MiB in and out.
nbdsh -c "$nbd_expect" -c '
import time
h = nbd.NBD(); h.connect_uri("nbd+unix:///bad?socket='"$sock"'")
n, end = 0, time.time() + 3
while time.time() < end:
    expect(errno.EIO, h.pwrite, bytes(65536), (n % 512) * 65536)
    expect(errno.EIO, h.pread, 65536, (n % 512) * 65536)
    n += 1
print("bad export: %d writes and reads, each EIO" % n)
' >"$tmp/bad.out" &
hammer=$!
nbdcopy "$tmp/in" "nbd+unix:///good?socket=$sock"
nbdcopy "nbd+unix:///good?socket=$sock" "$tmp/out"
wait "$hammer" || fail "the failing export did not answer EIO every time"
cat "$tmp/bad.out"
cmp -n $((48 << 20)) "$tmp/in" "$tmp/out" || fail "the good export did not round-trip beside the failing one"
stop_sgblkd cfg
cmp -n $((48 << 20)) "$tmp/in" "$tmp/good.img" || fail "the good export was not flushed at exit"
grep -q "store error" "$tmp/cfg.log" || fail "the failing store's errors were not logged"
