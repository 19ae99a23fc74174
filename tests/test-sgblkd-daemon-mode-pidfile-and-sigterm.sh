#!/usr/bin/env bash
# Without -f sgblkd detaches once it is listening (so the shell can use
# it at once), writes its pidfile, and on SIGTERM exits and removes it.
# SIGUSR1 writes counters to the log (syslog when detached; checked here
# in the foreground).
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdinfo

sock=$tmp/d.sock
"$SGBLKD" -U "$sock" -P "$tmp/pid" --size 8M
[ -S "$sock" ] || fail "not listening when the command returned"
[ -s "$tmp/pid" ] || fail "no pidfile"
pid=$(cat "$tmp/pid")
_daemons+=("$pid")
kill -0 "$pid" || fail "pidfile names no running process"
nbdinfo --size "nbd+unix:///?socket=$sock" | grep -qx 8388608 || fail "wrong size"
kill -TERM "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "daemon did not exit on SIGTERM"
[ ! -e "$tmp/pid" ] || fail "pidfile left behind"
[ ! -e "$sock" ] || fail "socket left behind"

# SIGUSR1 in the foreground: counters on stderr.
start_sgblkd fg --size 8M
nbdinfo "$uri" >/dev/null
kill -USR1 "$pid_fg"
for i in $(seq 50); do grep -q 'cmd pool:' "$tmp/fg.log" && break; sleep 0.1; done
for what in 'nbd:' 'scsi:' 'cmd pool:' 'sgv pool:' 'store cache:' 'cache in-memory'; do
  grep -q "$what" "$tmp/fg.log" || fail "SIGUSR1 did not log '$what'"
done
stop_sgblkd fg INT
