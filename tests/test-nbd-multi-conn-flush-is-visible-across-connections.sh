#!/usr/bin/env bash
# CAN_MULTI_CONN: a write acknowledged on one connection and a FLUSH sent
# on another make the write visible to every connection and durable in
# in the file: the daemon is killed -9 right after the flush, so anything
# still held only in its memory would be lost.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh

start_sgblkd file --create --size 16M "$tmp/disk.img"
nbdsh -c '
import os
uri = "'"$uri"'"
a, b, c = nbd.NBD(), nbd.NBD(), nbd.NBD()
for x in (a, b, c):
    x.connect_uri(uri)
    assert x.can_multi_conn()
data = os.urandom(1 << 20)
a.pwrite(data, 4096)
b.flush()
assert c.pread(len(data), 4096) == data
open("'"$tmp"'/expected", "wb").write(data)
'
kill -KILL "$pid_file"; wait "$pid_file" 2>/dev/null || true
cmp -i 4096:0 -n $((1 << 20)) "$tmp/disk.img" "$tmp/expected" || fail "flushed data is not in the file"
