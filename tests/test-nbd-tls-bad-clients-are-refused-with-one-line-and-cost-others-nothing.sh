#!/usr/bin/env bash
# Bad TLS clients each get a clear refusal and one log line, and a good
# client is served right after each (and during the stall):
#   - a wrong pre-shared key, or a user without one;
#   - a plain client on a --tls=require server (NBD_REP_ERR_TLS_REQD to
#     every option but STARTTLS and ABORT, known or not, an ACK and a
#     close for ABORT, a close for EXPORT_NAME);
#   - a client that sends STARTTLS and then plain NBD;
#   - one that sends STARTTLS and then stalls in the TLS handshake
#     (dropped after --handshake-timeout);
#   - a TLS client on a --tls=off server.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"
requires nbdinfo python3

make_psk "$tmp/keys.psk" alice
make_psk "$tmp/wrong.psk" alice        # alice, with another key
start_sgblkd req --size 16M --tls=require --tls-psk "$tmp/keys.psk" --handshake-timeout 2
req_sock=$sock
good="nbds+unix://alice@/?socket=$req_sock&tls-psk-file=$tmp/keys.psk"

# expect_one_line LOG PATTERN: exactly one warning since the last call,
# and it matches PATTERN.
declare -A seen
expect_one_line ()
{
  local n; n=$(grep -c "warning\|error" "$1" || true)
  [ "$n" -eq $(( ${seen[$1]:-0} + 1 )) ] || { cat "$1"; fail "expected one more log line for: $2"; }
  grep "warning\|error" "$1" | tail -n 1 | grep -q "$2" || { cat "$1"; fail "the log line does not say: $2"; }
  seen[$1]=$n
  nbdinfo --size "$good" >/dev/null || fail "the good client was not served after: $2"
}

# A wrong key.
! nbdinfo "nbds+unix://alice@/?socket=$req_sock&tls-psk-file=$tmp/wrong.psk" 2>"$tmp/err" ||
  fail "a wrong PSK was let in"
expect_one_line "$tmp/req.log" "pre-shared key is wrong or its user unknown"
# A user the server has no key for.
make_psk "$tmp/bob.psk" bob
! nbdinfo "nbds+unix://bob@/?socket=$req_sock&tls-psk-file=$tmp/bob.psk" 2>"$tmp/err" ||
  fail "an unknown PSK user was let in"
expect_one_line "$tmp/req.log" "pre-shared key is wrong or its user unknown"

# A plain client: nbdinfo (libnbd) is told TLS is required.
! LIBNBD_DEBUG=1 nbdinfo "nbd+unix:///?socket=$req_sock" >/dev/null 2>"$tmp/err" ||
  fail "a plain client was served by a --tls=require server"
grep -q "server error message: this server requires TLS" "$tmp/err" ||
  fail "the plain client was not told that TLS is required"
expect_one_line "$tmp/req.log" "did not start TLS, which this server requires"

# The same in the raw protocol: every option the server knows but
# STARTTLS and ABORT, and one it does not, gets NBD_REP_ERR_TLS_REQD;
# ABORT after them still gets its ACK and a close; NBD_OPT_EXPORT_NAME,
# which has no error reply, a close.
raw_plain ()
{
  PYTHONPATH="$top_srcdir/tests" python3 - "$req_sock" "$1" <<'PY' || fail "a raw plain client ($1) was not refused as the spec says"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
from nbd_raw import recv_exact
def rx(n): return recv_exact(s, n)
def option(opt, payload=b""):
    s.sendall(struct.pack(">QII", 0x49484156454F5054, opt, len(payload)) + payload)
def reply(opt):
    magic, ropt, rtype, rlen = struct.unpack(">QIII", rx(20))
    rx(rlen)
    assert magic == 0x3e889045565a9 and ropt == opt, (hex(magic), ropt, opt)
    return rtype
rx(18)
s.sendall(struct.pack(">I", 3))
if sys.argv[2] == "options":
    # LIST, INFO and GO (export "", no info requests), STRUCTURED_REPLY,
    # LIST_ and SET_META_CONTEXT (export "", no queries), and 42, unknown.
    for opt, payload in ((3, b""), (6, bytes(6)), (7, bytes(6)), (8, b""),
                         (9, bytes(8)), (10, bytes(8)), (42, b"")):
        option(opt, payload)
        rtype = reply(opt)
        assert rtype == 0x80000005, "option %d got %#x" % (opt, rtype)
    option(2)                                      # ABORT
    rtype = reply(2)
    assert rtype == 1, "ABORT got %#x, not NBD_REP_ACK" % rtype
else:
    option(1)                                      # EXPORT_NAME ""
# At once: well before the 2 s handshake timeout would close it anyway.
s.settimeout(1)
assert s.recv(1) == b"", "the server did not close the connection"
PY
}
raw_plain options
expect_one_line "$tmp/req.log" "did not start TLS, which this server requires"
raw_plain export-name
expect_one_line "$tmp/req.log" "did not start TLS, which this server requires"

# STARTTLS, then plain NBD instead of a TLS handshake: closed.
PYTHONPATH="$top_srcdir/tests" python3 - "$req_sock" <<'PY' || fail "a client that went on in plain after STARTTLS was not closed"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
s.recv(18)
s.sendall(struct.pack(">I", 3))
s.sendall(struct.pack(">QII", 0x49484156454F5054, 5, 0))     # STARTTLS
assert len(s.recv(20)) == 20
s.sendall(struct.pack(">QII", 0x49484156454F5054, 7, 0))     # GO, in plain
try:
    assert s.recv(100) == b""
except ConnectionResetError:
    pass
PY
expect_one_line "$tmp/req.log" "handshake failed: TLS handshake: "

# STARTTLS, then nothing: dropped after the 2 s handshake timeout, while
# a good client is served meanwhile.
PYTHONPATH="$top_srcdir/tests" python3 - "$req_sock" "$good" <<'PY' || fail "the stalled TLS handshake was not dropped in time"
import socket, struct, subprocess, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(15)
from nbd_raw import recv_exact
def rx(n): return recv_exact(s, n)
rx(18)
s.sendall(struct.pack(">I", 3))
s.sendall(struct.pack(">QII", 0x49484156454F5054, 5, 0))     # STARTTLS
magic, opt, rtype, rlen = struct.unpack(">QIII", rx(20))
assert opt == 5 and rtype == 1, hex(rtype)                    # ACK
t0 = time.monotonic()
subprocess.run(["nbdinfo", "--size", sys.argv[2]], check=True, stdout=subprocess.DEVNULL)
assert s.recv(1) == b""
took = time.monotonic() - t0
print("stalled TLS handshake dropped after %.1f s" % took)
assert 1.5 <= took <= 8, took
PY
expect_one_line "$tmp/req.log" "TLS handshake: the client stalled for 2 s"

# A TLS client on a server without TLS.
start_sgblkd off --size 16M
! nbdinfo "nbds+unix://alice@/?socket=$sock&tls-psk-file=$tmp/keys.psk" >/dev/null 2>"$tmp/err" ||
  fail "a TLS client was served without TLS"
seen[$tmp/off.log]=0
n=$(grep -c "warning\|error" "$tmp/off.log" || true)
[ "$n" -eq 1 ] && grep -q "asked for TLS, which this server does not offer" "$tmp/off.log" ||
  { cat "$tmp/off.log"; fail "the TLS client on a plain server was not logged in one line"; }
nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null || fail "plain server: a plain client was refused"
stop_sgblkd off
stop_sgblkd req
