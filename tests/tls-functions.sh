# TLS helpers for sgblk's shell tests (source after tests/functions.sh):
# keys and certificates made with GnuTLS's certtool and psktool in $tmp.

# make_psk FILE USER: a psktool key file with a key for USER.
make_psk ()
{
  requires psktool
  psktool -u "$2" -p "$1" >/dev/null
}

# make_ca DIR NAME: a certificate authority in DIR (ca-cert.pem,
# ca-key.pem).
make_ca ()
{
  requires certtool
  mkdir -p "$1"
  certtool --generate-privkey --outfile "$1/ca-key.pem" 2>/dev/null
  printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 30\n' "$2" >"$1/ca.info"
  certtool --generate-self-signed --load-privkey "$1/ca-key.pem" \
    --template "$1/ca.info" --outfile "$1/ca-cert.pem" 2>/dev/null
}

# make_cert CA_DIR OUT_DIR server|client: a key and a certificate signed
# by CA_DIR's CA, under the names nbdkit, qemu and libnbd look for
# (server-cert.pem and server-key.pem, or client-cert.pem and
# client-key.pem), with the CA's certificate beside them as ca-cert.pem.
# A server certificate is for localhost and 127.0.0.1.
make_cert ()
{
  local ca=$1 out=$2 role=$3
  mkdir -p "$out"
  [ -f "$out/ca-cert.pem" ] || cp "$ca/ca-cert.pem" "$out/ca-cert.pem"
  certtool --generate-privkey --outfile "$out/$role-key.pem" 2>/dev/null
  if [ "$role" = server ]; then
    printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\n' >"$out/$role.info"
  else
    printf 'cn = sgblk test client\ntls_www_client\n' >"$out/$role.info"
  fi
  printf 'encryption_key\nsigning_key\nexpiration_days = 30\n' >>"$out/$role.info"
  certtool --generate-certificate --load-ca-certificate "$ca/ca-cert.pem" \
    --load-ca-privkey "$ca/ca-key.pem" --load-privkey "$out/$role-key.pem" \
    --template "$out/$role.info" --outfile "$out/$role-cert.pem" 2>/dev/null
}

# make_pki: $tmp/ca (the CA), $tmp/server (server-*.pem, ca-cert.pem),
# $tmp/client (client-*.pem signed by the CA, ca-cert.pem) and
# $tmp/anon (the CA's certificate alone: a client without a certificate).
make_pki ()
{
  make_ca "$tmp/ca" "sgblk test CA"
  make_cert "$tmp/ca" "$tmp/server" server
  make_cert "$tmp/ca" "$tmp/client" client
  mkdir -p "$tmp/anon"
  cp "$tmp/ca/ca-cert.pem" "$tmp/anon/"
}
