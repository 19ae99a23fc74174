#!/usr/bin/env bash
# NBD over TLS: sgblkd's in-memory disk against nbdkit's memory plugin,
# both --tls=require with the same X.509 certificates (made here with
# certtool), over TCP on 127.0.0.1, both filled first: fio's nbd engine,
# one connection, queue depth 16, sequential 1M writes and reads of fio's
# default (incompressible) data.  Each figure is the median of ROUNDS
# runs of RUNTIME seconds, at most 3, beside the server's CPU time per
# I/O; the disks are 256M (64M with BENCH_QUICK=1), quick to fill, so
# that the section adds under a minute to run.sh.
#
#   contrib/bench/nbd-tls.sh [ROUNDS] [RUNTIME]      (defaults 3, 5 -> 3)
#
# fio's URIs may not name local files (libnbd refuses tls-certificates=
# there), so libnbd finds the CA in its default place, $HOME/.pki/libnbd,
# with HOME set to a scratch directory.  Writes nbd-tls.md and its plots
# into BENCH_OUT (see common.sh).
. "$(dirname "$0")/common.sh"
need fio fio
need nbdkit nbdkit
need gnutls-bin certtool
[ "$quick" = 1 ] || size=256M
[ "$runtime" -le 3 ] || runtime=3

section nbd-tls "NBD over TLS (X.509), in-memory disks: sgblkd against nbdkit memory"

pki=$tmp/pki
mkdir -p "$pki" "$tmp/home/.pki/libnbd"
certtool --generate-privkey --outfile "$pki/ca-key.pem" 2>/dev/null
printf 'cn = bench CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$tmp/ca.info"
certtool --generate-self-signed --load-privkey "$pki/ca-key.pem" --template "$tmp/ca.info" \
  --outfile "$pki/ca-cert.pem" 2>/dev/null
certtool --generate-privkey --outfile "$pki/server-key.pem" 2>/dev/null
printf 'cn = localhost\ndns_name = localhost\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n' \
  >"$tmp/server.info"
certtool --generate-certificate --load-ca-certificate "$pki/ca-cert.pem" \
  --load-ca-privkey "$pki/ca-key.pem" --load-privkey "$pki/server-key.pem" \
  --template "$tmp/server.info" --outfile "$pki/server-cert.pem" 2>/dev/null
cp "$pki/ca-cert.pem" "$tmp/home/.pki/libnbd/"
export HOME=$tmp/home

# free_port: a TCP port nobody listens on now.
free_port () { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

tls_pair ()
{
  local p
  p=$(free_port)
  serve sg "sgblk TLS" "$SGBLKD" -f -p "$p" -b 127.0.0.1 --size "$size" \
    --tls=require --tls-certificates "$pki"
  wait_until sg nbdinfo --size "nbds://localhost:$p/" >/dev/null 2>&1
  target[sg]="--ioengine=nbd --uri=nbds://localhost:$p/"
  p=$(free_port)
  serve nk "nbdkit memory TLS" nbdkit -f -p "$p" -i 127.0.0.1 --tls=require \
    --tls-certificates "$pki" memory "$size"
  wait_until nk nbdinfo --size "nbds://localhost:$p/" >/dev/null 2>&1
  target[nk]="--ioengine=nbd --uri=nbds://localhost:$p/"
  servers=(sg nk)
}
tls_pair
fill_all

workloads=(
  "1M sequential write|write|1M"
  "1M sequential read|read|1M"
)
say "Both disks are $size, filled with fio's incompressible data first;" \
    "fio's nbd engine, one connection over TCP on 127.0.0.1, TLS with" \
    "the same X.509 server certificate (no client certificate), cipher" \
    "as the two GnuTLS ends negotiate by default."
bench
section_done
