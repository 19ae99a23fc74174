#!/usr/bin/env bash
# 256 MiB of random data copied into the in-memory disk with nbdcopy and
# back out compares equal, and the disk reports it all allocated.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdcopy cmp

random_file "$tmp/in" 256
start_sgblkd mem --size 256M
nbdcopy --flush "$tmp/in" "$uri"
nbdcopy "$uri" "$tmp/out"
cmp "$tmp/in" "$tmp/out" || fail "data read back differs from data written"
# A second round over 4 connections reuses the same vectors and commands.
nbdcopy --connections=4 "$uri" "$tmp/out2"
cmp "$tmp/in" "$tmp/out2" || fail "multi-connection read differs"
stop_sgblkd mem
grep -q 'cmd pool: .* in use 0 ' "$tmp/mem.log" || fail "commands still in use at exit"
grep -q 'sgv pool: .* in use 0 ' "$tmp/mem.log" || fail "vectors still in use at exit"
