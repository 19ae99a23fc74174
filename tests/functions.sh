# Helpers for sgblk's shell tests: start and stop the daemon, clean up,
# skip with a reason.  Source it first thing:  . "${srcdir:-.}/tests/functions.sh"
#
# Every test gets its own scratch directory $tmp (removed at exit), and
# every daemon it starts is killed at exit even if the test fails.

set -e
set -u

: "${SGBLKD:=${top_builddir:-.}/sgblkd}"
: "${SGBLKD_TEST:=${top_builddir:-.}/tests/sgblkd-test}"
# nbdsh runs "python3 -m nbd"; a python3 earlier on PATH (a virtualenv,
# pyenv) may not have Debian's libnbd bindings, while /usr/bin's does.
if ! python3 -c 'import nbd' 2>/dev/null &&
   /usr/bin/python3 -c 'import nbd' 2>/dev/null; then
  PATH=/usr/bin:$PATH
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sgblk-test.XXXXXX")
_cleanup_fns=()
_daemons=()

cleanup_fn () { _cleanup_fns+=("$*"); }

_run_cleanup ()
{
  local status=$? i
  set +e
  for (( i=${#_cleanup_fns[@]}-1; i>=0; i-- )); do eval "${_cleanup_fns[$i]}"; done
  for pid in "${_daemons[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    for f in "$tmp"/*.log; do
      [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }
    done
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap _run_cleanup EXIT
trap 'exit 130' INT TERM

# skip REASON: exit 77, which automake reports as SKIP, saying why.
skip () { echo "SKIP: $*"; exit 77; }

# requires CMD...: skip unless each command exists.
requires ()
{
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || skip "'$c' is not installed"
  done
}

fail () { echo "FAIL: $*" >&2; exit 1; }

# requires_test_hooks: from here on, run the daemon built with the test
# hooks (tests/sgblkd-test, which make check builds), so that e.g.
# SGBLK_TEST_CMD_FAIL_EVERY=N makes every Nth command allocation fail,
# and SGBLK_TEST_STORE_FAULT=SPEC puts a fault store (src/store/fault.c)
# under the cache, over the file (or over the in-memory disk): rules
# separated by ',', each OP[:after=N][:count=M][:rate=P][:errno=E][:seed=S]
# with OP read, write, flush, zero or trim; e.g. 'write:after=8:count=4'
# fails the 9th to 12th writes with EIO, 'read:rate=0.1:errno=EROFS' a
# tenth of the reads with EROFS.
requires_test_hooks ()
{
  [ -x "$SGBLKD_TEST" ] || skip "tests/sgblkd-test is not built (make check builds it)"
  SGBLKD=$SGBLKD_TEST
}

# start_sgblkd NAME [ARGS...]: run sgblkd in the foreground (as a child)
# on the Unix socket $tmp/NAME.sock with ARGS; sets $sock, $uri and
# $pid_NAME, logs to $tmp/NAME.log.  Returns once the socket answers.
start_sgblkd ()
{
  local name=$1; shift
  sock=$tmp/$name.sock
  uri="nbd+unix:///?socket=$sock"
  "$SGBLKD" -f -U "$sock" "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$!
  _daemons+=("$pid")
  eval "pid_$name=$pid"
  wait_for_socket "$sock" "$pid" "$tmp/$name.log"
  # The FUSE file appears after the socket: wait for it as well.
  case " $* " in
    *" --fuse "*)
      local i
      for i in $(seq 100); do
        grep -q "serving the disk as" "$tmp/$name.log" && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.log" >&2; fail "sgblkd exited at start-up"; }
        sleep 0.1
      done
      fail "sgblkd did not mount its FUSE file within 10 s" ;;
  esac
}

# wait_for_socket SOCK PID LOG: up to 10 s for the daemon to listen.
wait_for_socket ()
{
  local i
  for i in $(seq 100); do
    [ -S "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; fail "sgblkd exited at start-up"; }
    sleep 0.1
  done
  cat "$3" >&2
  fail "sgblkd did not listen on $1 within 10 s"
}

# wait_for_exit PID SECONDS: 0 once PID has exited, 1 if it still runs
# after SECONDS.
wait_for_exit ()
{
  local i
  for i in $(seq $(( $2 * 10 ))); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  ! kill -0 "$1" 2>/dev/null
}

# show_sgblkd NAME: where the daemon is, for whoever reads a failed
# test's log: its open descriptors and every thread's stack (gdb).
show_sgblkd ()
{
  local pid
  eval "pid=\$pid_$1"
  kill -0 "$pid" 2>/dev/null || { echo "sgblkd ($1) is not running" >&2; return 0; }
  echo "--- sgblkd ($1): descriptors" >&2
  ls -l "/proc/$pid/fd" >&2 || true
  command -v gdb >/dev/null &&
    gdb -p "$pid" -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(Thread|#)' >&2
  return 0
}

# stop_sgblkd NAME [SIGNAL]: signal the daemon (TERM by default), wait for
# it, and fail unless it exits 0 within 30 s.
stop_sgblkd ()
{
  local name=$1 sig=${2:-TERM} pid
  eval "pid=\$pid_$name"
  kill -"$sig" "$pid"
  wait_for_exit "$pid" 30 || {
    show_sgblkd "$name"
    fail "sgblkd ($name) still running 30 s after SIG$sig"; }
  local status=0
  wait "$pid" || status=$?
  [ "$status" -eq 0 ] || { cat "$tmp/$name.log" >&2; fail "sgblkd ($name) exited with status $status after SIG$sig"; }
}

# random_file PATH SIZE_MIB: incompressible test data.
random_file () { head -c "$(( $2 * 1024 * 1024 ))" /dev/urandom >"$1"; }

# start_sgblkd_tcp NAME [ARGS...]: like start_sgblkd, on a free TCP port
# of 127.0.0.1; sets $port and $url (nbd://127.0.0.1:PORT).
start_sgblkd_tcp ()
{
  local name=$1; shift
  local try pid i
  for try in $(seq 10); do
    port=$(shuf -i 20000-60000 -n 1)
    "$SGBLKD" -f -p "$port" -b 127.0.0.1 "$@" >"$tmp/$name.log" 2>&1 &
    pid=$!
    _daemons+=("$pid")
    for i in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      grep -q "listening on 127.0.0.1:$port" "$tmp/$name.log" && {
        eval "pid_$name=$pid"; url="nbd://127.0.0.1:$port"; return 0; }
      sleep 0.1
    done
    grep -q "Address already in use" "$tmp/$name.log" || break
  done
  cat "$tmp/$name.log" >&2
  fail "sgblkd did not listen on TCP"
}

# requires_fuse_and_loop: skip unless this machine can mount FUSE and
# attach loop devices (root, /dev/fuse, /dev/loop-control).
requires_fuse_and_loop ()
{
  [ "$(id -u)" -eq 0 ] || skip "needs root for FUSE mounts and loop devices"
  [ -c /dev/fuse ] || skip "no /dev/fuse"
  [ -e /dev/loop-control ] || skip "no loop devices"
  requires losetup fusermount3 mkfs.ext4
}

# fuse_mountpoint: a mount point in $tmp, unmounted at exit whatever happens.
fuse_mountpoint ()
{
  mnt=$tmp/mnt
  mkdir -p "$mnt"
  cleanup_fn "mountpoint -q '$mnt' && { fusermount3 -u '$mnt' 2>/dev/null || umount -l '$mnt'; }"
}

# attach_loop FILE: a loop device on FILE in $loop, detached at exit.
attach_loop ()
{
  loop=$(losetup -f --show "$1")
  # Detach at exit only if the device still serves our file: a test that
  # detached it already must not take another test's device with it.
  cleanup_fn "losetup -j '$1' -n -O NAME 2>/dev/null | grep -qx '$loop' && losetup -d '$loop'"
}

# memory_cgroup BYTES: a memory cgroup limited to BYTES, in $cg (v2's
# memory.max, or v1's memory.limit_in_bytes where v2 has no memory
# controller), removed at exit; skip if there is none.  A process joins
# it by writing its PID to $cg/cgroup.procs.
memory_cgroup ()
{
  local limit_file
  if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
    cg=/sys/fs/cgroup/sgblk-test-$$; limit_file=memory.max
  elif [ -d /sys/fs/cgroup/memory ]; then
    cg=/sys/fs/cgroup/memory/sgblk-test-$$; limit_file=memory.limit_in_bytes
  else
    skip "no memory cgroup controller"
  fi
  mkdir "$cg" || skip "cannot create a memory cgroup"
  # (At exit a process may take a moment to leave it.)
  cleanup_fn "for i in \$(seq 50); do rmdir '$cg' 2>/dev/null && break; sleep 0.1; done"
  echo "$1" >"$cg/$limit_file"
}

# The allocator-call counter (tests/alloc-count.c).  requires_alloc_shim
# sets $alloc_shim; start a daemon NAME under it with
#   LD_PRELOAD=$alloc_shim SGBLK_ALLOC_COUNT=$tmp/alloc-NAME start_sgblkd NAME ...
# (only the daemon gets them), then put alloc_count_begin NAME and
# alloc_count_end NAME around the part that must not allocate;
# alloc_count_end prints the counted calls by caller (naming sgblkd's own
# with addr2line) and sets $alloc_calls.  The calls of the cache
# reserve's refill thread (named sgblk-refill), which maps and locks
# memory outside the I/O path so that the I/O path need not, are not in
# $alloc_calls: they are counted apart in $alloc_refill_calls.
requires_alloc_shim ()
{
  alloc_shim=${top_builddir:-.}/tests/alloc-count.so
  [ -f "$alloc_shim" ] || skip "tests/alloc-count.so is not built (make check builds it)"
  # A sanitizer build must keep its own allocator first in the process.
  ! ldd "$SGBLKD" | grep -q libasan ||
    skip "sgblkd is built with ASan, whose allocator the shim cannot stand in front of"
}
# alloc_count_start_file NAME: the file whose creation starts the count
# (for a client that starts it itself, once connected).
alloc_count_start_file ()
{
  grep -q "^loaded pid" "$tmp/alloc-$1.log" || fail "the allocator counter is not loaded in $1"
  echo "$tmp/alloc-$1.start"
}
alloc_count_begin () { touch "$(alloc_count_start_file "$1")"; }
alloc_count_end ()
{
  local count call off
  touch "$tmp/alloc-$1.stop"
  alloc_calls=$(grep -v "^loaded pid" "$tmp/alloc-$1.log" | grep -vc " thread sgblk-refill$" || true)
  alloc_refill_calls=$(grep -c " thread sgblk-refill$" "$tmp/alloc-$1.log" || true)
  [ "$alloc_refill_calls" -eq 0 ] ||
    echo "  the reserve's refill thread (not counted):" \
      "$(grep " thread sgblk-refill$" "$tmp/alloc-$1.log" | awk '{print $1}' | sort | uniq -c | paste -sd ' ')"
  grep -v "^loaded pid" "$tmp/alloc-$1.log" | grep -v " thread sgblk-refill$" |
    sed "s/ tid [0-9]*//" | sort | uniq -c | sort -rn | head -n 20 |
    while read -r count call; do
      # The daemon's own callers come as sgblkd(+0xOFFSET) (or under the
      # name of the binary that runs, e.g. sgblkd-test), a return address:
      # name the call, the instruction before it (and what it was inlined in).
      off=$(echo "$call" | sed -nE "s/.*${SGBLKD##*/}\\(\\+(0x[0-9a-f]+)\\).*/\\1/p")
      [ -n "$off" ] && command -v addr2line >/dev/null &&
        call="$call = $(addr2line -f -i -s -e "$SGBLKD" "$(printf '0x%x' $((off - 1)))" | paste -sd ' ')"
      echo "  $count $call"
    done
}

# nbdsh -c "$nbd_expect" defines expect(ERRNO, f, *args): f(*args) must
# fail with that errno.
nbd_expect='
import errno
def expect(err, f, *a):
    try:
        f(*a)
    except nbd.Error as e:
        assert e.errnum == err, "got %s, want %s" % (e.errno, errno.errorcode[err])
        return
    raise AssertionError("no error")
'

# notify_listen [NBD_SOCKET [FILE]]: systemd's notification socket,
# stood in for by tests/notify_listener.py at $notify (messages in
# $tmp/notify.log); it checks NBD_SOCKET and FILE when READY=1 comes.
# Killed at exit.
notify_listen ()
{
  local i
  notify=$tmp/notify
  python3 "$top_srcdir/tests/notify_listener.py" "$notify" "$tmp/notify.log" "$@" &
  cleanup_fn "kill $!"
  for i in $(seq 50); do [ -S "$notify" ] && break; sleep 0.1; done
  [ -S "$notify" ] || fail "the notification socket did not appear"
}

# usr1_wait NAME PATTERN: SIGUSR1 to daemon NAME (started with
# start_sgblkd), then up to 10 s for one more line matching PATTERN in
# its log (what it logs, or does, on the signal).
usr1_wait ()
{
  local n i pid
  eval "pid=\$pid_$1"
  n=$(grep -c -- "$2" "$tmp/$1.log" || true)
  kill -USR1 "$pid"
  for i in $(seq 100); do
    [ "$(grep -c -- "$2" "$tmp/$1.log" || true)" -gt "$n" ] && return 0
    sleep 0.1
  done
  fail "sgblkd ($1) logged no new '$2' within 10 s of SIGUSR1"
}
