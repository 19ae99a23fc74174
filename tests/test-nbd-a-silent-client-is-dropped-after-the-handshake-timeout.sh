#!/usr/bin/env bash
# A client that connects and then says nothing is disconnected once
# --handshake-timeout has passed (and not before), with one log line,
# while a client that negotiates normally is served meanwhile.  So is one
# that trickles its handshake a byte every half second: the timeout is
# the whole handshake's, not each silence's.
. "${top_srcdir:-.}/tests/functions.sh"
requires python3 nbdinfo

start_sgblkd silent --size 16M --handshake-timeout 2
PYTHONPATH="$top_srcdir/tests" python3 - "$sock" <<'PY' || fail "the silent client was not dropped as expected"
import socket, sys, time, nbd_raw
s = nbd_raw.connect(sys.argv[1])
t0 = time.monotonic()
greeting = nbd_raw.recv_exact(s, 18)
assert greeting[:8] == b"NBDMAGIC", greeting
s.settimeout(10)
rest = s.recv(1)                  # nothing more comes; then the server closes
took = time.monotonic() - t0
print("dropped after %.1f s, having sent %r" % (took, rest))
assert rest == b"" and 1.5 <= took <= 8, took
PY
nbdinfo --size "$uri" >/dev/null || fail "a normal client was not served"
grep -q "handshake failed" "$tmp/silent.log" || fail "the drop was not logged"

PYTHONPATH="$top_srcdir/tests" python3 - "$sock" <<'PY' &
import socket, struct, sys, time, nbd_raw
s = nbd_raw.connect(sys.argv[1])
t0 = time.monotonic()
nbd_raw.recv_exact(s, 18)
# Client flags, then NBD_OPT_LIST, then its options forever: each byte
# alone, half a second apart.
msg = struct.pack(">I", 3) + (struct.pack(">QII", 0x49484156454F5054, 3, 0)) * 100
try:
    for b in msg:
        s.send(bytes([b]))
        time.sleep(0.5)
        if time.monotonic() - t0 > 20:
            break
except (BrokenPipeError, ConnectionResetError):
    pass
took = time.monotonic() - t0
print("trickler dropped after %.1f s" % took)
assert 1.5 <= took <= 5, "the trickling client was held %.1f s, want the 2 s timeout" % took
PY
trickler=$!
sleep 0.5
nbdinfo --size "$uri" >/dev/null || fail "a normal client was not served while one trickled"
wait "$trickler" || fail "a client trickling its handshake was not dropped at the timeout"
grep -q "handshake failed: not completed within the handshake timeout" "$tmp/silent.log" ||
  fail "the trickler's drop was not logged as the timeout"
stop_sgblkd silent
