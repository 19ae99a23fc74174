#!/usr/bin/env bash
# TLS credentials that cannot be used stop sgblkd at start with exit 1
# and one line on stderr naming the file: a missing directory or file,
# a file that is not one, a certificate or key that does not parse, a
# key that is not the certificate's, no CA with --tls-verify-peer, a
# PSK file that is not psktool's format, a key its user may not read.
# Good ones start it.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"

make_pki
make_psk "$tmp/keys.psk" alice

# refused NAME_IN_MESSAGE ARGS...: exit 1, one line on stderr naming it.
refused ()
{
  local name=$1 status=0; shift
  timeout 20 "$SGBLKD" -f -U "$tmp/s.sock" --size 16M "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq 1 ] || { cat "$tmp/err"; fail "$*: exit $status, not 1"; }
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || { cat "$tmp/err"; fail "$*: not one line on stderr"; }
  grep -qF "$name" "$tmp/err" || { cat "$tmp/err"; fail "$*: the message does not name $name"; }
  echo "refused: $(cat "$tmp/err")"
}

bad=$tmp/bad
new_bad () { rm -rf "$bad"; cp -r "$tmp/server" "$bad"; }

refused "$tmp/none" --tls=on --tls-certificates "$tmp/none"
refused "$tmp/keys.psk" --tls=on --tls-certificates "$tmp/keys.psk"
new_bad; rm "$bad/server-key.pem"
refused "$bad/server-key.pem" --tls=require --tls-certificates "$bad"
new_bad; rm "$bad/server-cert.pem"; mkdir "$bad/server-cert.pem"
refused "$bad/server-cert.pem" --tls=require --tls-certificates "$bad"
new_bad; echo "not a key" >"$bad/server-key.pem"
refused "$bad/server-key.pem" --tls=require --tls-certificates "$bad"
new_bad; head -c 300 "$tmp/server/server-cert.pem" >"$bad/server-cert.pem"
refused "$bad/server-cert.pem" --tls=require --tls-certificates "$bad"
new_bad; cp "$tmp/client/client-key.pem" "$bad/server-key.pem"
refused "$bad/server-key.pem" --tls=require --tls-certificates "$bad"
new_bad; rm "$bad/ca-cert.pem"
refused "$bad/ca-cert.pem" --tls=require --tls-certificates "$bad" --tls-verify-peer
new_bad; echo "garbage" >"$bad/ca-cert.pem"
refused "$bad/ca-cert.pem" --tls=require --tls-certificates "$bad"
refused "$tmp/no.psk" --tls=require --tls-psk "$tmp/no.psk"
echo "alice:xyz" >"$tmp/bad.psk"
refused "$tmp/bad.psk" --tls=require --tls-psk "$tmp/bad.psk"
: >"$tmp/empty.psk"
refused "$tmp/empty.psk" --tls=require --tls-psk "$tmp/empty.psk"

# Good credentials serve.
start_sgblkd good --size 16M --tls=on --tls-certificates "$tmp/server" --tls-verify-peer
stop_sgblkd good
new_bad; rm "$bad/ca-cert.pem"          # the CA is only needed to verify clients
start_sgblkd good2 --size 16M --tls=require --tls-certificates "$bad"
stop_sgblkd good2
start_sgblkd good3 --size 16M --tls=require --tls-psk "$tmp/keys.psk"
stop_sgblkd good3

# A key its user may not read (root reads everything: run as nobody).
if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ]; then
  chmod 711 "$tmp"
  new_bad; chmod 755 "$bad"; chmod 644 "$bad"/*; chmod 600 "$bad/server-key.pem"
  mkdir -m 777 "$tmp/nobody"
  status=0
  setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    "$SGBLKD" -f -U "$tmp/nobody/s.sock" --size 16M --tls=require --tls-certificates "$bad" \
    >/dev/null 2>"$tmp/err" || status=$?
  [ "$status" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
    grep -qF "$bad/server-key.pem: Permission denied" "$tmp/err" ||
    { cat "$tmp/err"; fail "an unreadable key: exit $status"; }
  echo "refused: $(cat "$tmp/err")"
fi
