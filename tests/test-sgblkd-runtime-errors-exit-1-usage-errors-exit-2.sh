#!/usr/bin/env bash
# Wrong input gets one clear line and the documented exit status: 2 for
# usage, 1 for runtime.  A socket held by a live daemon is never stolen; a
# stale one is cleaned up; a TCP port in use is reported.
. "${top_srcdir:-.}/tests/functions.sh"

# expect STATUS PATTERN ARGS...: run sgblkd in the foreground and check
# its exit status and the line it printed.
expect ()
{
  local want=$1 pattern=$2 status=0; shift 2
  timeout 10 "$SGBLKD" -f "$@" >"$tmp/out" 2>&1 || status=$?
  cat "$tmp/out"
  [ "$status" -eq "$want" ] || fail "sgblkd $* exited $status, want $want"
  grep -q -- "$pattern" "$tmp/out" || fail "sgblkd $*: no '$pattern' in its message"
}

expect 2 "unknown option '--no-such-option'" --no-such-option
expect 2 "size must not be zero" --size 0 -U "$tmp/x.sock"
expect 2 "invalid size 'big'" --size big -U "$tmp/x.sock"
expect 2 "not a multiple of the block size" --size 1000 -U "$tmp/x.sock"
expect 2 "invalid block size" -B 1000 -U "$tmp/x.sock"
expect 1 "No such file or directory" -U "$tmp/x.sock" "$tmp/missing.img"
[ ! -e "$tmp/x.sock" ] || fail "a failed start left its socket behind"

# A file whose size is not a multiple of the block size.
head -c 1000 /dev/zero >"$tmp/odd.img"
expect 1 "not a positive multiple of the block size" -U "$tmp/x.sock" "$tmp/odd.img"

# An unreadable file (root reads everything, so use a directory).
mkdir "$tmp/dir.img"
expect 1 "dir.img" -U "$tmp/x.sock" "$tmp/dir.img"

# --create never resizes an existing file.
truncate -s 1M "$tmp/small.img"
expect 1 "refusing to resize" --create --size 2M -U "$tmp/x.sock" "$tmp/small.img"
[ "$(stat -c %s "$tmp/small.img")" -eq 1048576 ] || fail "file was resized"

# A live daemon's socket is not taken over, and it keeps serving.
start_sgblkd live --size 1M
expect 1 "in use by a running server" -U "$sock" --size 1M
nbdinfo --size "$uri" | grep -qx 1048576 || fail "the first daemon stopped serving"

# A stale socket (its daemon was killed) is removed and reused.
kill -KILL "$pid_live"; wait "$pid_live" 2>/dev/null || true
[ -S "$sock" ] || fail "test needs the stale socket file"
start_sgblkd reuse --size 2M
nbdinfo --size "$uri" | grep -qx 2097152 || fail "did not serve on the stale socket path"
stop_sgblkd reuse

# A TCP port in use.
start_sgblkd_tcp tcp --size 1M
expect 1 "Address already in use" -p "$port" --size 1M
stop_sgblkd tcp
