#!/usr/bin/env bash
# One daemon, two exports, two workers.  Export 'slow' is a file on the
# FUSE mount of a second daemon, which is stopped (SIGSTOP): its cache's
# write-back stalls, and each FLUSH sent to it holds the worker that runs
# it.  With four such FLUSHes waiting, 'fast' still gets its FLUSH, an
# unaligned write and read and a TRIM (each a worker's job) answered at
# once; once the second daemon goes on, 'slow's FLUSHes succeed and its
# data reaches its file.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh fusermount3
[ "$(id -u)" -eq 0 ] || skip "needs root for FUSE mounts"
[ -c /dev/fuse ] || skip "no /dev/fuse"

fuse_mountpoint
start_sgblkd backing --size 64M --fuse "$mnt"
# Registered after the unmount: runs before it, and before the daemons
# are killed (a stopped FUSE daemon would hang both).
cleanup_fn "kill -CONT $pid_backing 2>/dev/null"

cat >"$tmp/sgblkd.conf" <<CONF
[sgblkd]
threads = 2

[slow]
file = $mnt/disk

[fast]
size = 64M
CONF
start_sgblkd cfg --config "$tmp/sgblkd.conf"
sock=$tmp/cfg.sock
slow="nbd+unix:///slow?socket=$sock"
fast="nbd+unix:///fast?socket=$sock"

kill -STOP "$pid_backing"
random_file "$tmp/data" 1
# 'slow': 1 MiB into its cache, then four FLUSHes in flight, which wait
# until the second daemon goes on; then they must have succeeded.
nbdsh -c 'import os, time' -c '
h = nbd.NBD(); h.connect_uri("'"$slow"'")
data = open("'"$tmp/data"'", "rb").read()
h.pwrite(data, 0)
flushes = [h.aio_flush() for _ in range(4)]    # (sent at once)
open("'"$tmp/slow.sent"'", "w").close()
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in flushes:
    assert h.aio_command_completed(c)
assert h.pread(len(data), 0) == data
h.shutdown()
' >"$tmp/slow.out" 2>&1 &
slow_client=$!
for i in $(seq 100); do [ -e "$tmp/slow.sent" ] && break; sleep 0.1; done
[ -e "$tmp/slow.sent" ] || fail "the FLUSHes to 'slow' were not sent: $(cat "$tmp/slow.out")"
sleep 1                         # the workers take them

# 'fast' meanwhile: each request below runs in a worker.
timeout 10 nbdsh -c 'import os' -c '
h = nbd.NBD(); h.connect_uri("'"$fast"'")
h.set_strict_mode(h.get_strict_mode() & ~nbd.STRICT_ALIGN)
h.flush()
d = os.urandom(1000)
h.pwrite(d, 7)
assert h.pread(1000, 7) == d
h.pwrite(os.urandom(65536), 1 << 20)
h.trim(65536, 1 << 20)
assert h.pread(65536, 1 << 20) == bytes(65536)
h.shutdown()
' || fail "'fast' waited for the workers that 'slow' holds"
kill -0 "$slow_client" 2>/dev/null ||
  fail "'slow' answered its FLUSHes with its file stalled: $(cat "$tmp/slow.out")"

kill -CONT "$pid_backing"
for i in $(seq 300); do kill -0 "$slow_client" 2>/dev/null || break; sleep 0.1; done
kill -0 "$slow_client" 2>/dev/null && fail "'slow' still waits for its FLUSHes 30 s after its file went on"
wait "$slow_client" || fail "'slow' did not answer its FLUSHes, or its data: $(cat "$tmp/slow.out")"
cmp -n $((1 << 20)) "$tmp/data" "$mnt/disk" || fail "'slow' flushed, but its file does not hold its data"
stop_sgblkd cfg
stop_sgblkd backing
