#!/usr/bin/env bash
# X.509 over TCP: nbdinfo and nbdcopy reach nbds://localhost:PORT/ with
# the CA's certificate (tls-certificates=DIR).  With --tls-verify-peer, a
# client certificate signed by the CA is let in; no certificate, or one
# signed by another CA, is refused with one log line saying so, while the
# good client is still served.  GnuTLS's clients send no certificate of a
# CA the server does not name, so a client that does send one (Python's
# ssl, OpenSSL's) checks the server's verification of it.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"
requires nbdinfo nbdcopy

make_pki
make_ca "$tmp/rogue-ca" "another CA"
make_cert "$tmp/rogue-ca" "$tmp/rogue" client
cp "$tmp/ca/ca-cert.pem" "$tmp/rogue/ca-cert.pem"   # it trusts the server

start_sgblkd_tcp plain --size 16M --tls=require --tls-certificates "$tmp/server"
nbdinfo "nbds://localhost:$port/?tls-certificates=$tmp/anon" >"$tmp/info" ||
  fail "nbdinfo over TLS with X.509 failed"
grep -q "with TLS" "$tmp/info" || fail "not TLS: $(head -n 1 "$tmp/info")"
random_file "$tmp/in" 16
nbdcopy "$tmp/in" "nbds://localhost:$port/?tls-certificates=$tmp/anon"
nbdcopy "nbds://localhost:$port/?tls-certificates=$tmp/anon" "$tmp/out"
cmp "$tmp/in" "$tmp/out" || fail "the data read back over TLS differs"
stop_sgblkd plain

start_sgblkd_tcp verify --size 16M --tls=require --tls-certificates "$tmp/server" \
  --tls-verify-peer
good="nbds://localhost:$port/?tls-certificates=$tmp/client"
nbdinfo --size "$good" >/dev/null || fail "a client with a good certificate was refused"
for who in anon rogue; do
  n=$(grep -c "handshake failed" "$tmp/verify.log" || true)
  ! nbdinfo --size "nbds://localhost:$port/?tls-certificates=$tmp/$who" 2>"$tmp/$who.err" ||
    fail "a client ($who) without a trusted certificate was let in"

  [ "$(grep -c "handshake failed" "$tmp/verify.log")" -eq $((n + 1)) ] ||
    fail "the refusal of $who was not logged in one line"
  nbdinfo --size "$good" >/dev/null || fail "the good client was refused after $who"
done
# A client offers only a certificate of a CA the server names (its own):
# the rogue one sends none, which is what the server reports for both.
[ "$(grep -c "sent no certificate signed by the trusted CA" "$tmp/verify.log")" -eq 2 ] ||
  fail "the refusals do not say why"

# OpenSSL sends its certificate whatever CAs the server names: the
# server checks it, refuses it, and says why in one line.  (In TLS 1.3
# the client's side of the handshake ends before the server has checked
# its certificate: the refusal is the close that answers its first
# option.)
n=$(grep -c "warning\|error" "$tmp/verify.log" || true)
PYTHONPATH="$top_srcdir/tests" python3 - "$port" "$tmp/ca/ca-cert.pem" "$tmp/rogue" <<'PY' || fail "a certificate of another CA was let in"
import socket, ssl, struct, sys
port, ca, rogue = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
from nbd_raw import recv_exact
def rx(n): return recv_exact(s, n)
IHAVEOPT = 0x49484156454F5054
rx(18)
s.sendall(struct.pack(">I", 3))
s.sendall(struct.pack(">QII", IHAVEOPT, 5, 0))                # STARTTLS
magic, opt, rtype, rlen = struct.unpack(">QIII", rx(20))
assert opt == 5 and rtype == 1, hex(rtype)                    # ACK
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.load_cert_chain(rogue + "/client-cert.pem", rogue + "/client-key.pem")
try:
    t = ctx.wrap_socket(s, server_hostname="localhost")
    t.sendall(struct.pack(">QII", IHAVEOPT, 3, 0))            # LIST
    reply = t.recv(20)
except (ssl.SSLError, OSError) as e:
    print("refused:", e)
else:
    assert reply == b"", "served over TLS with %s: %r" % (t.version(), reply)
    print("refused: closed after the handshake (%s)" % t.version())
PY
[ "$(grep -c "warning\|error" "$tmp/verify.log")" -eq $((n + 1)) ] ||
  { cat "$tmp/verify.log"; fail "the refusal of a certificate of another CA was not logged in one line"; }
grep "warning\|error" "$tmp/verify.log" | tail -n 1 |
  grep -q "handshake failed: TLS handshake: the client's certificate is refused: .*issuer is unknown" ||
  { tail -n 1 "$tmp/verify.log"; fail "the refusal does not say the certificate's issuer is unknown"; }
nbdinfo --size "$good" >/dev/null || fail "the good client was refused after a certificate of another CA"
stop_sgblkd verify
