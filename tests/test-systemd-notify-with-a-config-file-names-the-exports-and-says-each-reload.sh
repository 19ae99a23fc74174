#!/usr/bin/env bash
# Type=notify with --config (the sgblkd@.service case): READY=1 comes
# once, when the socket answers, with a STATUS= naming both exports of
# the file.  SIGHUP (the unit's ExecReload=) is RELOADING=1, then READY=1
# with a STATUS= of the exports now served: a third one added; the same
# three, and that the file was refused, when it has an error; and once
# a changed export's old version has lost its last client, a STATUS=
# with the new version back.
. "${top_srcdir:-.}/tests/functions.sh"
requires python3 nbdinfo
grep -q '^#define HAVE_LIBSYSTEMD 1' "$top_builddir/config.h" ||
  skip "built without libsystemd (./configure --with-libsystemd)"

notify_listen "$tmp/cfg.sock"

# wait_for_line N LINE: up to 10 s for the listener to have logged LINE
# (whole) N times.
wait_for_line ()
{
  local i
  for i in $(seq 100); do
    [ "$(grep -cx -- "$2" "$tmp/notify.log" || true)" -ge "$1" ] && return 0
    sleep 0.1
  done
  cat "$tmp/notify.log" >&2
  fail "'$2' not on the notification socket $1 times within 10 s"
}
# last_status: the daemon's last STATUS= line.
last_status () { grep "^$pid_cfg STATUS=" "$tmp/notify.log" | tail -n 1 | cut -d= -f2-; }
# reload STATUS: SIGHUP; then RELOADING=1, and READY=1 with STATUS, in
# that order, after what came before.
reload ()
{
  local n; n=$(wc -l <"$tmp/notify.log")
  kill -HUP "$pid_cfg"
  wait_for_line $(( ++ready )) "$pid_cfg READY=1"
  tail -n +$((n + 1)) "$tmp/notify.log" >"$tmp/since"
  [ "$(sed -n 1p "$tmp/since")" = "$pid_cfg RELOADING=1" ] ||
    { cat "$tmp/since"; fail "the reload did not start with RELOADING=1"; }
  grep -qx "$pid_cfg STATUS=Reloading $conf" "$tmp/since" ||
    { cat "$tmp/since"; fail "no STATUS= while reloading"; }
  [ "$(grep -x -A1 "$pid_cfg READY=1" "$tmp/since" | tail -n 1)" = "$pid_cfg STATUS=$1" ] ||
    { cat "$tmp/since"; fail "READY=1 after the reload did not come with STATUS=$1"; }
}
names () { nbdinfo --list --json "nbd+unix:///?socket=$tmp/cfg.sock" |
             python3 -c 'import json, sys; print(" ".join(sorted(e["export-name"] for e in json.load(sys.stdin)["exports"])))'; }

conf=$tmp/sgblkd.conf
printf '[alpha]\nsize = 16M\n\n[beta]\nsize = 32M\n' >"$conf"
NOTIFY_SOCKET=$notify start_sgblkd cfg --config "$conf"
ready=1
wait_for_line 1 "$pid_cfg READY=1"
grep -qx "checked: greeting=NBDMAGIC" "$tmp/notify.log" ||
  { cat "$tmp/notify.log"; fail "READY=1 came before the socket answered"; }
[ "$(last_status)" = "Serving 2 exports ('alpha', 'beta') on 1 socket" ] ||
  { cat "$tmp/notify.log"; fail "STATUS= does not name both exports"; }
[ "$(grep -c "READY=1" "$tmp/notify.log")" -eq 1 ] || fail "READY=1 sent more than once"

# A third export.
printf '\n[gamma]\nsize = 8M\n' >>"$conf"
reload "Serving 3 exports ('alpha', 'beta', 'gamma') on 1 socket"
[ "$(names)" = "alpha beta gamma" ] || fail "exports listed after adding gamma: $(names)"

# A file with an error: the three are kept, and STATUS= says so.
cp "$conf" "$tmp/good.conf"
printf '\n[broken\n' >>"$conf"
reload "Serving 3 exports ('alpha', 'beta', 'gamma') on 1 socket; reloading $conf failed, these are kept (see the log)"
cp "$tmp/good.conf" "$conf"

# alpha changed while a client holds it: it leaves the server's table,
# and its new version comes (and STATUS= names it again) only when that
# client has gone.
python3 -c '
import sys, time
sys.path.insert(0, sys.argv[2])
import nbd_raw
s = nbd_raw.connect(sys.argv[1])
nbd_raw.handshake(s, b"alpha")
print("connected", flush=True)
time.sleep(60)
' "$tmp/cfg.sock" "$top_srcdir/tests" >"$tmp/hold.out" 2>&1 &
holder=$!
cleanup_fn "kill $holder 2>/dev/null"
for i in $(seq 100); do grep -q connected "$tmp/hold.out" && break; sleep 0.1; done
grep -q connected "$tmp/hold.out" || { cat "$tmp/hold.out"; fail "the client did not reach alpha"; }
sed -i 's/^size = 16M$/size = 24M/' "$conf"
reload "Serving 2 exports ('beta', 'gamma') on 1 socket"
kill "$holder"
wait_for_line 1 "$pid_cfg STATUS=Serving 3 exports ('beta', 'gamma', 'alpha') on 1 socket"
[ "$(grep -cx "$pid_cfg READY=1" "$tmp/notify.log")" -eq "$ready" ] ||
  fail "READY=1 sent again outside a reload"
[ "$(nbdinfo --size "nbd+unix:///alpha?socket=$tmp/cfg.sock")" -eq $((24 << 20)) ] ||
  fail "alpha is not its new version"

stop_sgblkd cfg
grep -qx "$pid_cfg STOPPING=1" "$tmp/notify.log" || fail "no STOPPING=1"
