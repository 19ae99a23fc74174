#!/usr/bin/env bash
# With --tls=require and --tls-psk, nbdinfo and nbdcopy reach the server
# on a Unix socket as nbds+unix://alice@/?socket=...&tls-psk-file=...:
# the connection is TLS, and 32 MiB of random data written over several
# connections (nbdcopy's) read back the same.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"
requires nbdinfo nbdcopy

make_psk "$tmp/keys.psk" alice
start_sgblkd psk --size 32M --tls=require --tls-psk "$tmp/keys.psk"
tls_uri="nbds+unix://alice@/?socket=$sock&tls-psk-file=$tmp/keys.psk"

nbdinfo "$tls_uri" >"$tmp/info" || fail "nbdinfo over TLS with a PSK failed"
grep -q "with TLS" "$tmp/info" || fail "not TLS: $(head -n 1 "$tmp/info")"

random_file "$tmp/in" 32
nbdcopy "$tmp/in" "$tls_uri" || fail "nbdcopy could not write over TLS"
nbdcopy "$tls_uri" "$tmp/out" || fail "nbdcopy could not read over TLS"
cmp "$tmp/in" "$tmp/out" || fail "the data read back over TLS differs"
! grep -E "warning|error" "$tmp/psk.log" || fail "the good clients were logged as failures"
stop_sgblkd psk
