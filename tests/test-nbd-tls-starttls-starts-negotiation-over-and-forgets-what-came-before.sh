#!/usr/bin/env bash
# After NBD_OPT_STARTTLS, option negotiation starts over inside TLS, as
# the NBD spec says: structured replies negotiated before it are
# forgotten (SET_META_CONTEXT then gets NBD_REP_ERR_INVALID), a second
# STARTTLS is invalid, and what is negotiated again inside TLS holds (a
# read gets a structured reply).  A raw client over Python's ssl.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"
requires python3

make_pki
start_sgblkd again --size 16M --tls=on --tls-certificates "$tmp/server"
PYTHONPATH="$top_srcdir/tests" python3 - "$sock" "$tmp/anon/ca-cert.pem" <<'PY' || fail "negotiation did not start over as the spec says"
import socket, ssl, struct, sys
IHAVEOPT, REP_MAGIC = 0x49484156454F5054, 0x3e889045565a9
ACK, META, ERR_INVALID = 1, 4, 0x80000003
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
from nbd_raw import recv_exact as rx
def opt(sock, o, data=b""):
    sock.sendall(struct.pack(">QII", IHAVEOPT, o, len(data)) + data)
    replies = []
    while True:
        magic, ro, rtype, rlen = struct.unpack(">QIII", rx(sock, 20))
        assert magic == REP_MAGIC and ro == o, (hex(magic), ro)
        replies.append((rtype, rx(sock, rlen)))
        if rtype != 3 and rtype != META:       # INFO and META_CONTEXT come before the end
            return replies
meta = struct.pack(">I", 0) + struct.pack(">I", 1) + struct.pack(">I", 15) + b"base:allocation"
rx(s, 18)
s.sendall(struct.pack(">I", 3))
assert opt(s, 8)[-1][0] == ACK                                  # STRUCTURED_REPLY, plain
assert opt(s, 5)[-1][0] == ACK                                  # STARTTLS
t = ssl.create_default_context(cafile=sys.argv[2]).wrap_socket(s, server_hostname="localhost")
assert opt(t, 10, meta)[-1][0] == ERR_INVALID, "structured replies survived STARTTLS"
assert opt(t, 5)[-1][0] == ERR_INVALID, "a second STARTTLS was accepted"
assert opt(t, 8)[-1][0] == ACK
r = opt(t, 10, meta)
assert [x[0] for x in r] == [META, ACK], r
assert opt(t, 7, struct.pack(">IH", 0, 0))[-1][0] == ACK           # GO
t.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 7, 0, 4096))    # READ
assert struct.unpack(">I", rx(t, 4))[0] == 0x668e33ef, "not a structured reply"
print("negotiation started over inside TLS")
PY
stop_sgblkd again
