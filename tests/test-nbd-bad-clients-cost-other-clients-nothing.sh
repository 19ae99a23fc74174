#!/usr/bin/env bash
# Garbage instead of a handshake, a client that hangs up mid-handshake and
# a client killed in the middle of a write payload: the daemon logs them,
# cleans up, and a client connected all along keeps reading intact data.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh python3

start_sgblkd mem --size 32M
head -c 4M /dev/urandom >"$tmp/data"
nbdcopy "$tmp/data" "$uri"

PYTHONPATH="$top_srcdir/tests" nbdsh -u "$uri" -c '
import os, socket, struct, time, nbd_raw
sock = "'"$sock"'"
data = open("'"$tmp"'/data", "rb").read()

def check_good_client():
    assert h.pread(len(data), 0) == data, "data changed"

# 1. Garbage bytes instead of the client flags and options.
s = nbd_raw.connect(sock)
nbd_raw.recv_exact(s, 18)
s.sendall(os.urandom(4096))
s.close()
check_good_client()

# 2. Hang up in the middle of an option header.
s = nbd_raw.connect(sock)
nbd_raw.recv_exact(s, 18)
s.sendall(struct.pack(">IQ", 1, nbd_raw.IHAVEOPT))
s.close()
check_good_client()

# 3. Vanish after half of a 1 MiB write payload, over the first 1 MiB.
for i in range(8):
    s = nbd_raw.connect(sock)
    size, flags = nbd_raw.handshake(s)
    assert size == 32 * 1024 * 1024
    nbd_raw.request(s, nbd_raw.CMD_WRITE, 0, 1 << 20)
    s.sendall(b"\xee" * (512 * 1024))
    s.close()
    check_good_client()

# 4. A bogus request magic in transmission: the server drops that client.
s = nbd_raw.connect(sock)
nbd_raw.handshake(s)
s.sendall(b"\xde\xad\xbe\xef" * 7)
s.settimeout(10)
assert s.recv(1) == b"", "server kept a client that broke the request stream"
s.close()
check_good_client()
print("other client unaffected")
'
# Let the server finish its cleanups, then check the counters.
sleep 1
kill -USR1 "$pid_mem"; sleep 0.5
stop_sgblkd mem
grep -qi 'handshake' "$tmp/mem.log" || fail "bad handshakes were not logged"
grep 'cmd pool:' "$tmp/mem.log" | tail -1 | grep -q ' in use 0 ' || fail "commands leaked"
grep 'sgv pool:' "$tmp/mem.log" | tail -1 | grep -q ' in use 0 ' || fail "vectors leaked"
grep "nbd:" "$tmp/mem.log" | tail -1 | grep -q "stuck cleanups 0" || fail "a cleanup got stuck"
