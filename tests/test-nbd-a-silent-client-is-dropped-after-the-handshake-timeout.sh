#!/usr/bin/env bash
# A client that connects and then says nothing is disconnected once
# --handshake-timeout has passed (and not before), with one log line,
# while a client that negotiates normally is served meanwhile.
. "${top_srcdir:-.}/tests/functions.sh"
requires python3 nbdinfo

start_sgblkd silent --size 16M --handshake-timeout 2
python3 - "$sock" <<'PY' || fail "the silent client was not dropped as expected"
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
t0 = time.monotonic()
greeting = b""
while len(greeting) < 18:
    greeting += s.recv(18 - len(greeting))
assert greeting[:8] == b"NBDMAGIC", greeting
s.settimeout(10)
rest = s.recv(1)                  # nothing more comes; then the server closes
took = time.monotonic() - t0
print("dropped after %.1f s, having sent %r" % (took, rest))
assert rest == b"" and 1.5 <= took <= 8, took
PY
nbdinfo --size "$uri" >/dev/null || fail "a normal client was not served"
grep -q "handshake failed" "$tmp/silent.log" || fail "the drop was not logged"
stop_sgblkd silent
