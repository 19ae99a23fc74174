#!/usr/bin/env bash
# X.509 over TCP: nbdinfo and nbdcopy reach nbds://localhost:PORT/ with
# the CA's certificate (tls-certificates=DIR).  With --tls-verify-peer, a
# client certificate signed by the CA is let in; no certificate, or one
# signed by another CA, is refused with one log line saying so, while the
# good client is still served.
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
stop_sgblkd verify
