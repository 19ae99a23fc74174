#!/usr/bin/env bash
# --idle-timeout 2: a connection that sends nothing and has nothing in
# flight is closed after 2 to 4 seconds, with a log line; one that sends a
# request every half second stays, and so does one whose requests take
# longer than the timeout to read its reply.  Without the option an idle
# connection stays.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh python3

start_sgblkd idle --size 64M --idle-timeout 2
PYTHONPATH="$top_srcdir/tests" nbdsh -c '
import time, nbd_raw
sock = "'"$sock"'"
idle, busy = nbd.NBD(), nbd.NBD()
idle.connect_unix(sock)
busy.connect_unix(sock)
t0 = time.monotonic()
for i in range(12):                  # 6 s of a request every 0.5 s
    busy.pwrite(b"x" * 4096, 4096 * i)
    time.sleep(0.5)
assert busy.pread(4096, 0) == b"x" * 4096
try:
    idle.pread(512, 0)
    raise AssertionError("the idle connection was not closed")
except nbd.Error as e:
    print("idle connection closed: %s" % e)
# A client that reads its reply only after 3 s: the request is in flight,
# so the connection is not idle while it waits.
s = nbd_raw.connect(sock)
nbd_raw.handshake(s)
nbd_raw.request(s, nbd_raw.CMD_READ, 0, 32 << 20)
time.sleep(3)
assert len(nbd_raw.recv_exact(s, 16 + (32 << 20))) == 16 + (32 << 20)
'
n=$(grep -c "idle for 2 s; closing the connection" "$tmp/idle.log")
[ "$n" -ge 1 ] || fail "the idle close was not logged"
stop_sgblkd idle

start_sgblkd forever --size 16M
nbdsh -u "$uri" -c 'import time; time.sleep(4); assert len(h.pread(512, 0)) == 512'
stop_sgblkd forever
