#!/usr/bin/env bash
# TLS set in the configuration file's [sgblkd] section applies to every
# export: NBD_OPT_LIST over TLS names them all, each export's data goes
# over TLS, and a plain client is refused (require).
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/tls-functions.sh"
requires nbdinfo nbdcopy

make_psk "$tmp/keys.psk" alice
cat >"$tmp/sgblkd.conf" <<CONF
[sgblkd]
tls = require
tls-psk = $tmp/keys.psk

[one]
size = 16M

[two]
size = 32M
CONF
start_sgblkd cfg --config "$tmp/sgblkd.conf"
uri () { echo "nbds+unix://alice@/${1:-}?socket=$sock&tls-psk-file=$tmp/keys.psk"; }

nbdinfo --list "$(uri)" >"$tmp/list" || fail "NBD_OPT_LIST over TLS failed"
grep -qx 'export="one":' "$tmp/list" && grep -qx 'export="two":' "$tmp/list" ||
  fail "not every export is listed over TLS: $(cat "$tmp/list")"
random_file "$tmp/in" 16
nbdcopy "$tmp/in" "$(uri two)"
nbdcopy "$(uri two)" "$tmp/out"
cmp -n $((16 << 20)) "$tmp/in" "$tmp/out" || fail "export two did not round-trip over TLS"
[ "$(nbdinfo --size "$(uri one)")" -eq $((16 << 20)) ] || fail "export one is not served over TLS"
nbdinfo "nbd+unix:///one?socket=$sock" >/dev/null 2>&1 && fail "a plain client was served on a require server"
stop_sgblkd cfg
