#!/usr/bin/env bash
# Without -f sgblkd detaches once it is listening (so the shell can use
# it at once), writes its pidfile, and on SIGTERM exits and removes it.
# The detached daemon has the cache's background threads (the idle pass;
# with a FILE, write-back; with --spill, the spiller): a fork keeps only
# the thread that forked, so they must start after it.
# SIGUSR1 writes counters to the log (syslog when detached; checked here
# in the foreground).
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdinfo nbdcopy

sock=$tmp/d.sock
"$SGBLKD" -U "$sock" -P "$tmp/pid" --size 8M
[ -S "$sock" ] || fail "not listening when the command returned"
[ -s "$tmp/pid" ] || fail "no pidfile"
pid=$(cat "$tmp/pid")
_daemons+=("$pid")
kill -0 "$pid" || fail "pidfile names no running process"
nbdinfo --size "nbd+unix:///?socket=$sock" | grep -qx 8388608 || fail "wrong size"
threads=$(cat /proc/"$pid"/task/*/comm | sort | tr '\n' ' ')
echo "threads of the detached daemon: $threads"
echo "$threads" | grep -q sgblk-idle || fail "the detached daemon has no idle-pass thread"
kill -TERM "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "daemon did not exit on SIGTERM"
[ ! -e "$tmp/pid" ] || fail "pidfile left behind"
[ ! -e "$sock" ] || fail "socket left behind"

# A detached daemon with a FILE writes back by itself, and spills.
"$SGBLKD" -U "$sock" -P "$tmp/pid" --create --size 8M "$tmp/disk.img"
pid=$(cat "$tmp/pid")
_daemons+=("$pid")
grep -q sgblk-flush /proc/"$pid"/task/*/comm || fail "the detached daemon has no write-back thread"
head -c 1M /dev/urandom >"$tmp/data"
nbdcopy "$tmp/data" "nbd+unix:///?socket=$sock"
# Written back within seconds without a flush (the write-back thread's
# once-a-second pass), not only at exit.
for i in $(seq 50); do cmp -s "$tmp/data" <(head -c 1M "$tmp/disk.img") && break; sleep 0.1; done
cmp -s "$tmp/data" <(head -c 1M "$tmp/disk.img") || fail "no write-back without a flush"
kill -TERM "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
"$SGBLKD" -U "$sock" -P "$tmp/pid" --size 8M --mem-limit 9M --spill "$tmp/spill"
pid=$(cat "$tmp/pid")
_daemons+=("$pid")
grep -q sgblk-spill /proc/"$pid"/task/*/comm || fail "the detached daemon has no spiller"
kill -TERM "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
[ ! -e "$tmp/pid" ] || fail "pidfile left behind"

# SIGUSR1 in the foreground: counters on stderr.
start_sgblkd fg --size 8M
nbdinfo "$uri" >/dev/null
kill -USR1 "$pid_fg"
for i in $(seq 50); do grep -q 'cmd pool:' "$tmp/fg.log" && break; sleep 0.1; done
for what in 'nbd:' 'scsi:' 'cmd pool:' 'sgv pool:' 'store cache:' 'cache in-memory'; do
  grep -q "$what" "$tmp/fg.log" || fail "SIGUSR1 did not log '$what'"
done
stop_sgblkd fg INT
