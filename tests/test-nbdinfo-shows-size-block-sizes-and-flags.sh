#!/usr/bin/env bash
# nbdinfo sees the size, the block size constraints and every
# transmission flag sgblkd advertises, over a Unix socket and over TCP.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdinfo jq

check_json ()
{
  local j=$1 bs=$2
  [ "$(jq '.protocol' "$j")" = '"newstyle-fixed"' ] || fail "protocol"
  [ "$(jq '.structured' "$j")" = true ] || fail "structured replies not negotiated"
  local e='.exports[0]'
  [ "$(jq "$e.\"export-size\"" "$j")" = $((64 * 1024 * 1024)) ] || fail "size"
  [ "$(jq "$e.block_size_minimum" "$j")" = "$bs" ] || fail "minimum block size"
  [ "$(jq "$e.block_size_preferred" "$j")" = 4096 ] || fail "preferred block size"
  [ "$(jq "$e.block_size_maximum" "$j")" = 33554432 ] || fail "maximum block size"
  [ "$(jq "$e.is_read_only" "$j")" = false ] || fail "read-only"
  for f in can_cache can_df can_fast_zero can_flush can_fua can_multi_conn can_trim can_zero; do
    [ "$(jq "$e.$f" "$j")" = true ] || fail "$f is not set"
  done
  jq -e "$e.contexts | index(\"base:allocation\")" "$j" >/dev/null || fail "base:allocation missing"
}

start_sgblkd unix --size 64M
nbdinfo --json "$uri" >"$tmp/unix.json"
cat "$tmp/unix.json"
check_json "$tmp/unix.json" 512
stop_sgblkd unix

# TCP on loopback, 4096-byte blocks.
start_sgblkd_tcp tcp -B 4096 --size 64M
nbdinfo --json "$url" >"$tmp/tcp.json"
check_json "$tmp/tcp.json" 4096
stop_sgblkd tcp
