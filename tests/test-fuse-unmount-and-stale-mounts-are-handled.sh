#!/usr/bin/env bash
# A writer killed mid-write and an unmount from outside leave the daemon
# with nothing stuck or leaked (it still exits 0 on SIGTERM); a daemon
# killed with -9 leaves a stale mount, which the next daemon reports with
# the command that clears it.
. "${top_srcdir:-.}/tests/functions.sh"
requires_fuse_and_loop

fuse_mountpoint
start_sgblkd one --size 256M --fuse "$mnt"
dd if=/dev/urandom of="$mnt/disk" bs=1M count=200 oflag=direct status=none &
writer=$!
sleep 0.5
kill -KILL "$writer"; wait "$writer" 2>/dev/null || true
fusermount3 -u "$mnt"
kill -USR1 "$pid_one"; sleep 0.5
grep 'cmd pool:' "$tmp/one.log" | tail -1 | grep -q ' in use 0 ' || fail "commands left in use"
grep 'sgv pool:' "$tmp/one.log" | tail -1 | grep -q ' in use 0 ' || fail "vectors left in use"
stop_sgblkd one

# A daemon that dies leaves its mount behind, answering ENOTCONN.
start_sgblkd two --size 16M --fuse "$mnt"
kill -KILL "$pid_two"; wait "$pid_two" 2>/dev/null || true
status=0
"$SGBLKD" -f --size 16M --fuse "$mnt" >"$tmp/three.log" 2>&1 || status=$?
cat "$tmp/three.log"
[ "$status" -eq 1 ] || fail "a stale mount did not make start-up fail with 1 ($status)"
grep -q "fusermount3 -u $mnt" "$tmp/three.log" || fail "no hint how to clear the stale mount"
fusermount3 -u "$mnt"
start_sgblkd four --size 16M --fuse "$mnt"
[ "$(stat -c %s "$mnt/disk")" -eq $((16 << 20)) ] || fail "no file after clearing the stale mount"
stop_sgblkd four
