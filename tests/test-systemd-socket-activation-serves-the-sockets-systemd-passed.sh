#!/usr/bin/env bash
# Started by socket activation, sgblkd serves on the Unix and TCP sockets
# systemd passed (here systemd-socket-activate, which starts it on the
# first connection), binds nothing of its own, and leaves the socket file
# to its maker.  Sockets it cannot serve on, and -U with activation, are
# refused in one line; LISTEN_FDS meant for another process is ignored.
. "${top_srcdir:-.}/tests/functions.sh"
requires systemd-socket-activate nbdcopy nbdinfo python3 cmp
listen_fds=$top_srcdir/tests/listen_fds.py

if ! grep -q '^#define HAVE_LIBSYSTEMD 1' "$top_builddir/config.h"; then
  # Built without libsystemd: activation must be refused, not ignored.
  status=0
  python3 "$listen_fds" "unix:$tmp/a.sock" -- "$SGBLKD" -f 2>"$tmp/err" || status=$?
  [ "$status" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
    grep -q "socket activation needs sgblkd built with libsystemd" "$tmp/err" ||
    { cat "$tmp/err"; fail "without libsystemd LISTEN_FDS is not refused clearly"; }
  skip "built without libsystemd; its refusal checked"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sock=$tmp/sa.sock
systemd-socket-activate -l "$sock" -l "127.0.0.1:$port" \
  "$SGBLKD" -f --size 64M >"$tmp/sa.log" 2>&1 &
pid=$!
_daemons+=("$pid")
wait_for_socket "$sock" "$pid" "$tmp/sa.log"

# In through the Unix socket (the first connection starts the daemon),
# out through the TCP port: one daemon, one disk.
random_file "$tmp/in" 8
nbdcopy "$tmp/in" "nbd+unix:///?socket=$sock"
nbdcopy "nbd://127.0.0.1:$port" "$tmp/out"
cmp -n $((8 << 20)) "$tmp/in" "$tmp/out" || fail "data written over unix differs read over TCP"
[ "$(nbdinfo --size "nbd://127.0.0.1:$port")" -eq $((64 << 20)) ] || fail "wrong size over TCP"
grep -q "listening on unix:$sock from systemd" "$tmp/sa.log" || fail "the Unix socket is not logged"
grep -q "listening on 127.0.0.1:$port from systemd" "$tmp/sa.log" || fail "the TCP socket is not logged"
# Nothing bound of its own: no default port 10809 while activated.
! grep -q "listening on 127.0.0.1:10809" "$tmp/sa.log" || fail "bound the default port as well"
[ "$(grep -c "listening on" "$tmp/sa.log")" -eq 2 ] || fail "listens on more than it was given"

kill -TERM "$pid"
wait_for_exit "$pid" 30 || fail "still running 30 s after SIGTERM"
status=0; wait "$pid" || status=$?
[ "$status" -eq 0 ] || { cat "$tmp/sa.log"; fail "exited $status after SIGTERM"; }
[ -S "$sock" ] || fail "unlinked the socket file systemd made"

# refused STATUS PATTERN SPEC... -- ARGS...: exactly one line on stderr
# matching PATTERN, and STATUS.
refused ()
{
  local want=$1 pattern=$2 status=0; shift 2
  local specs=()
  while [ "$1" != -- ]; do specs+=("$1"); shift; done; shift
  timeout 10 python3 "$listen_fds" "${specs[@]}" -- "$SGBLKD" -f --size 64M "$@" \
    >"$tmp/out" 2>"$tmp/err" || status=$?
  [ "$status" -eq "$want" ] || { cat "$tmp/err"; fail "${specs[*]} $*: exited $status, want $want"; }
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || { cat "$tmp/err"; fail "${specs[*]} $*: want one line on stderr"; }
  grep -q "^sgblkd: .*$pattern" "$tmp/err" || { cat "$tmp/err"; fail "${specs[*]} $*: not '$pattern'"; }
  [ ! -s "$tmp/out" ] || fail "${specs[*]} $*: printed on stdout"
}
refused 2 "cannot be used with socket activation" "unix:$tmp/r1.sock" -- -U "$tmp/r1b.sock"
refused 2 "cannot be used with socket activation" "unix:$tmp/r2.sock" -- -p "$port"
refused 2 "cannot be used with socket activation" "unix:$tmp/r3.sock" -- -b 0.0.0.0
[ ! -e "$tmp/r1b.sock" ] || fail "bound -U's socket though it refused"
refused 1 "is not a stream socket" "dgram:$tmp/r4.sock" --
refused 1 "is not listening" "unlistened:$tmp/r5.sock" --
refused 1 "is not a socket" "file:$tmp/r6" --
refused 1 "is not listening" "unix:$tmp/r7.sock" "unlistened:$tmp/r7b.sock" --
nine=(); for i in $(seq 9); do nine+=("unix:$tmp/n$i.sock"); done
refused 1 "8 at most" "${nine[@]}" --

# LISTEN_PID names another process: not ours to take; -U serves.
python3 "$listen_fds" "LISTEN_PID=other:" "unix:$tmp/other.sock" -- \
  "$SGBLKD" -f --size 64M -U "$tmp/own.sock" >"$tmp/own.log" 2>&1 &
pid=$!
_daemons+=("$pid")
wait_for_socket "$tmp/own.sock" "$pid" "$tmp/own.log"
nbdinfo --size "nbd+unix:///?socket=$tmp/own.sock" >/dev/null || fail "-U does not answer"
! grep -q "from systemd" "$tmp/own.log" || fail "took sockets meant for another process"
kill -TERM "$pid"
wait_for_exit "$pid" 30 || fail "still running 30 s after SIGTERM"

# With --config (as sgblkd@.service runs it): every export on the socket
# systemd passed; a file that names sockets of its own is refused.
printf '[a]\nsize = 16M\n\n[b]\nsize = 32M\n' >"$tmp/two.conf"
systemd-socket-activate -l "$tmp/cfg.sock" "$SGBLKD" -f --config "$tmp/two.conf" >"$tmp/cfg.log" 2>&1 &
pid=$!
_daemons+=("$pid")
wait_for_socket "$tmp/cfg.sock" "$pid" "$tmp/cfg.log"
[ "$(nbdinfo --size "nbd+unix:///b?socket=$tmp/cfg.sock")" -eq $((32 << 20)) ] ||
  fail "export b of the configuration file is not served on the passed socket"
[ "$(nbdinfo --size "nbd+unix:///a?socket=$tmp/cfg.sock")" -eq $((16 << 20)) ] ||
  fail "export a of the configuration file is not served on the passed socket"
kill -TERM "$pid"
wait_for_exit "$pid" 30 || fail "still running 30 s after SIGTERM"
printf '[sgblkd]\nunix = %s\n[a]\nsize = 16M\n' "$tmp/own2.sock" >"$tmp/own.conf"
status=0
timeout 10 python3 "$listen_fds" "unix:$tmp/r8.sock" -- "$SGBLKD" -f --config "$tmp/own.conf" \
  2>"$tmp/err" || status=$?
[ "$status" -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
  grep -q "cannot be used with socket activation" "$tmp/err" ||
  { cat "$tmp/err"; fail "a configuration file's own socket beside activation was not refused"; }
