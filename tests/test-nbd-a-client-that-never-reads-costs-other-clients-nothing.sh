#!/usr/bin/env bash
# A client that pipelines 1 MiB reads and never reads a reply, and one that
# drains its replies at 256 KiB/s, stay connected to a file-backed export
# and to the memory disk.  Meanwhile another client's 4 KiB and 1 MiB
# reads and writes and its FLUSH each finish within a second; then SIGTERM,
# with both still connected, ends the daemon within 10 s with exit 0, and
# the file holds every write the good client had acknowledged.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh python3
export PYTHONPATH=$top_srcdir/tests

failed=()

# isolation NAME SGBLKD-ARGS...
isolation ()
{
  local name=$1 pid i status hold
  shift
  start_sgblkd "$name" "$@"
  pid=$(eval echo "\$pid_$name")

  python3 "$top_srcdir/tests/nbd_stall.py" hold "$sock" \
    "$tmp/$name.ready" "$tmp/$name.release" 60 >"$tmp/$name-hold.log" 2>&1 &
  hold=$!
  cleanup_fn "kill $hold 2>/dev/null"
  for i in $(seq 100); do
    [ -e "$tmp/$name.ready" ] && break
    kill -0 "$hold" 2>/dev/null || { cat "$tmp/$name-hold.log"; fail "$name: the stalling clients did not connect"; }
    sleep 0.1
  done
  [ -e "$tmp/$name.ready" ] || fail "$name: the stalling clients did not connect within 10 s"
  sleep 0.5                             # their requests are queued by now

  if ! nbdsh -u "$uri" -c '
import os, sys, time
MiB = 1 << 20
tmp, name = "'"$tmp"'", "'"$name"'"
ACCEPTABLE, GIVE_UP = 1.0, 3.0
times = []

def timed(what, issue):
    start = time.monotonic()
    cookie = issue()
    while not h.aio_command_completed(cookie):
        if time.monotonic() - start > GIVE_UP:
            print("FAIL: %s: a %s did not finish within %.0f s while a client "
                  "that never reads is connected" % (name, what, GIVE_UP))
            sys.exit(1)
        h.poll(50)
    took = time.monotonic() - start
    times.append("%s %.3f" % (what, took))
    if took > ACCEPTABLE:
        print("FAIL: %s: a %s took %.2f s (more than %.0f s) while a client "
              "that never reads is connected" % (name, what, took, ACCEPTABLE))
        sys.exit(1)

# Away from the regions the stalling clients read (0 and 4 MiB).
OFF4K, OFF1M = 64 * MiB, 65 * MiB
for rnd in range(4):
    small, big = os.urandom(4096), os.urandom(MiB)
    rbuf4k, rbuf1m = nbd.Buffer(4096), nbd.Buffer(MiB)
    timed("4 KiB read", lambda: h.aio_pread(rbuf4k, OFF4K))
    timed("1 MiB read", lambda: h.aio_pread(rbuf1m, OFF1M))
    timed("4 KiB write", lambda: h.aio_pwrite(small, OFF4K))
    timed("1 MiB write", lambda: h.aio_pwrite(big, OFF1M))
    if rnd < 3:                         # the last writes are left to SIGTERM
        timed("FLUSH", lambda: h.aio_flush())
    check = nbd.Buffer(4096)
    timed("4 KiB read", lambda: h.aio_pread(check, OFF4K))
    assert check.to_bytearray() == small, "a 4 KiB write did not read back"
    # Acknowledged: the daemon must have it on disk when it exits.
    open(tmp + "/" + name + ".4k", "wb").write(small)
    open(tmp + "/" + name + ".1m", "wb").write(big)
print("%s: seconds taken: %s" % (name, ", ".join(times)))
'; then
    failed+=("$name: another client was held up (see above)")
  fi

  # SIGTERM with the stalling clients still connected.
  kill -TERM "$pid"
  if ! wait_for_exit "$pid" 10; then
    echo "FAIL: $name: sgblkd still running 10 s after SIGTERM while a client that never reads is connected"
    failed+=("$name: no exit within 10 s of SIGTERM")
    touch "$tmp/$name.release"
    if ! wait_for_exit "$pid" 5; then
      echo "$name: sgblkd still running 5 s after the stalling clients left; killing it"
      kill -KILL "$pid"
    else
      echo "$name: sgblkd exited only after the stalling clients left"
    fi
    wait "$pid" || true
  else
    status=0
    wait "$pid" || status=$?
    if [ "$status" -ne 0 ]; then
      echo "FAIL: $name: sgblkd exited with status $status after SIGTERM"
      failed+=("$name: exit status $status after SIGTERM")
    fi
  fi
  touch "$tmp/$name.release"
  wait "$hold" || true
}

isolation file --create --size 256M "$tmp/disk.img"
# The good client's last writes, acknowledged but never flushed by it,
# are in the file.
if [ -f "$tmp/file.4k" ]; then
  cmp -s -n 4096 -i 0:$((64 << 20)) "$tmp/file.4k" "$tmp/disk.img" ||
    failed+=("file: an acknowledged 4 KiB write is not in the file after SIGTERM")
  cmp -s -n $((1 << 20)) -i 0:$((65 << 20)) "$tmp/file.1m" "$tmp/disk.img" ||
    failed+=("file: an acknowledged 1 MiB write is not in the file after SIGTERM")
else
  failed+=("file: no write was acknowledged, so the file could not be checked")
fi

isolation mem --size 256M

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "other clients unaffected; SIGTERM honoured"
