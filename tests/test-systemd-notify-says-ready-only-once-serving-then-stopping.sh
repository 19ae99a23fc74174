#!/usr/bin/env bash
# Type=notify: with NOTIFY_SOCKET set, sgblkd sends READY=1 only when its
# socket already answers and its FUSE file already exists, with a STATUS=
# line saying what it serves, and STOPPING=1 when SIGTERM arrives.  A
# daemon that detaches sends READY=1 as the process systemd started
# (whose PID systemd accepts) and names itself in MAINPID=.
. "${top_srcdir:-.}/tests/functions.sh"
requires python3 nbdinfo
grep -q '^#define HAVE_LIBSYSTEMD 1' "$top_builddir/config.h" ||
  skip "built without libsystemd (./configure --with-libsystemd)"
# The FUSE file too where FUSE can be mounted (as root); else NBD alone.
fuse=() want_checked="checked: greeting=NBDMAGIC" want_file=
if [ "$(id -u)" -eq 0 ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
  fuse_mountpoint
  fuse=(--fuse "$mnt") want_checked="$want_checked file=yes" want_file=", file $mnt/disk"
fi

notify_listen "$tmp/n.sock" ${fuse[@]:+"$mnt/disk"}

# wait_for_line PATTERN: up to 10 s for the listener to log it.
wait_for_line ()
{
  local i
  for i in $(seq 100); do
    grep -q -- "$1" "$tmp/notify.log" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$tmp/notify.log" >&2 2>/dev/null
  fail "no '$1' on the notification socket within 10 s"
}

NOTIFY_SOCKET=$notify "$SGBLKD" -f -U "$tmp/n.sock" --size 64M ${fuse[@]:+"${fuse[@]}"} \
  >"$tmp/n.log" 2>&1 &
pid=$!
_daemons+=("$pid")
wait_for_line "READY=1"
grep -qx "$want_checked" "$tmp/notify.log" ||
  { cat "$tmp/notify.log"; fail "READY=1 came before the socket answered or the file existed"; }
grep -qx "$pid READY=1" "$tmp/notify.log" || fail "READY=1 not from the daemon's PID"
grep -qx "$pid MAINPID=$pid" "$tmp/notify.log" || fail "MAINPID= is not the daemon's PID"
grep -qx "$pid STATUS=Serving an in-memory disk of 64 MiB as export '' on 1 socket$want_file" \
  "$tmp/notify.log" || { cat "$tmp/notify.log"; fail "STATUS= does not say what is served"; }
[ "$(grep -c "READY=1" "$tmp/notify.log")" -eq 1 ] || fail "READY=1 sent more than once"
! grep -q STOPPING "$tmp/notify.log" || fail "STOPPING=1 before any signal"

kill -TERM "$pid"
wait_for_line "STOPPING=1"
grep -qx "$pid STOPPING=1" "$tmp/notify.log" || fail "STOPPING=1 not from the daemon"
wait_for_exit "$pid" 30 || fail "still running 30 s after SIGTERM"
status=0; wait "$pid" || status=$?
[ "$status" -eq 0 ] || { cat "$tmp/n.log"; fail "exited $status after SIGTERM"; }

# Detached: the parent, which systemd would have started, is the sender.
: >"$tmp/notify.log"
status=0
NOTIFY_SOCKET=$notify "$SGBLKD" -U "$tmp/n.sock" -P "$tmp/n.pid" --size 1G -e vol \
  2>"$tmp/d.log" &
parent=$!
wait "$parent" || status=$?
[ "$status" -eq 0 ] || { cat "$tmp/d.log"; fail "detaching sgblkd exited $status"; }
daemon=$(cat "$tmp/n.pid")
_daemons+=("$daemon")
# Only root may send as another process; a user's daemon speaks for itself.
sender=$parent
[ "$(id -u)" -eq 0 ] || sender=$daemon
wait_for_line "READY=1"
grep -qx "$sender READY=1" "$tmp/notify.log" ||
  { cat "$tmp/notify.log"; fail "READY=1 not sent as $sender (parent $parent, daemon $daemon)"; }
grep -qx "$sender MAINPID=$daemon" "$tmp/notify.log" || fail "MAINPID= does not name the daemon"
grep -q "STATUS=Serving an in-memory disk of 1 GiB as export 'vol' on 1 socket$" "$tmp/notify.log" ||
  fail "STATUS= of the detached daemon"
grep -q "greeting=NBDMAGIC" "$tmp/notify.log" || fail "READY=1 before the socket answered"
kill -TERM "$daemon"
wait_for_line "$daemon STOPPING=1"
wait_for_exit "$daemon" 30 || fail "detached daemon still running 30 s after SIGTERM"
