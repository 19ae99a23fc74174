# Helpers for the qemu guest tests (tests/test-guest-*.sh).  Source it
# after tests/functions.sh; it skips the test unless the guest can be
# built, and builds it (contrib/guest/build-initramfs.sh, cached in
# $guest).  One guest at a time:
#
#   guest_boot STEP SOCKET CONNS SECONDS
#       boot the guest in the background for step STEP of
#       contrib/guest/init, with CONNS virtio-serial ports (nbd0, nbd1, ...)
#       connected to the daemon's SOCKET, for at most SECONDS; returns
#       once init runs.  The console goes to $guest_log, and the guest's
#       console input comes from a fifo the test holds open.
#   guest_wait MARKER SECONDS
#       until the console shows SGBLK-MARKER; fails on a guest failure,
#       on qemu's exit and after SECONDS.
#   guest_answer
#       a line on the guest's console: init goes on past its checkpoint.
#   guest_finish SECONDS
#       wait for the guest to power off, show its report, and fail unless
#       the step finished cleanly.
#
# guest_initrd, if set, is booted instead of the built initrd (a test may
# append a cpio archive of its own files to it).
#
# Where /dev/kvm is usable and a paused qemu survives it, the guest runs
# under KVM; qemu can fail to start a guest under KVM on some hosts (an
# MSR the host refuses), and then the same boot is retried under TCG.
#
# guest_daemon, if set, names the daemon (start_sgblkd's NAME) whose
# state a guest that does not finish is shown with.

requires qemu-system-x86_64 gcc modinfo cpio nbd-client mke2fs apt-get timeout
[ -x /bin/busybox ] || skip "busybox-static is not installed"

guest=${top_builddir:-.}/guest
"${top_srcdir:-.}/contrib/guest/build-initramfs.sh" "$guest" ||
  skip "cannot build the guest (no kernel package to download?)"

guest_pid=
guest_fd=
cleanup_fn '[ -n "$guest_pid" ] && kill "$guest_pid" 2>/dev/null'

# The accelerators to try, in order.  KVM only where qemu can run this
# guest's CPU model under it: on some hosts it aborts as it resets the
# virtual CPU (an MSR the host refuses).  Paused (-S), with no disk and
# no ports, it gets past that reset in well under a second and then
# waits; so a qemu still running after 3 s has passed, and a failed
# probe has connected to no daemon.  The answer is kept in $guest for
# the other guest tests of this build.
_guest_accels ()
{
  if ! [ -c /dev/kvm ] || ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
    echo tcg
    return 0
  fi
  if ! [ -f "$guest/kvm-probe" ]; then
    local status=0
    timeout 3 qemu-system-x86_64 -machine q35,accel=kvm -cpu max -m 64 -nodefaults \
      -display none -monitor none -serial none -S >"$tmp/kvm-probe.log" 2>&1 || status=$?
    if [ "$status" -eq 124 ]; then
      echo kvm >"$tmp/kvm-probe"
    else
      { echo tcg; tail -n 2 "$tmp/kvm-probe.log"; } >"$tmp/kvm-probe"
    fi
    mv -f "$tmp/kvm-probe" "$guest/kvm-probe"
  fi
  if [ "$(head -n 1 "$guest/kvm-probe")" = kvm ]; then
    echo kvm tcg
  else
    echo "guest: qemu cannot run the guest under KVM here; TCG:" >&2
    tail -n +2 "$guest/kvm-probe" >&2
    echo tcg
  fi
}

# _guest_qemu ACCEL STEP SOCKET CONNS SECONDS: start qemu in the background.
_guest_qemu ()
{
  local ports=() k
  for (( k = 0; k < $4; k++ )); do
    ports+=(-chardev "socket,id=nbd$k,path=$3" -device "virtserialport,chardev=nbd$k,name=nbd$k")
  done
  timeout "$5" qemu-system-x86_64 -machine "q35,accel=$1" -cpu max -m 512 -smp 2 \
    -nographic -no-reboot -nic none -kernel "$guest/vmlinuz" -initrd "${guest_initrd:-$guest/initrd.img}" \
    -append "console=ttyS0 quiet panic=-1 sgblk.step=$2 sgblk.conns=$4" \
    -device virtio-serial-pci "${ports[@]}" <"$tmp/console-$2" >"$guest_log" 2>&1 &
  guest_pid=$!
}

# _guest_since START_NS: seconds since START_NS, with a tenth.
_guest_since ()
{
  local ds=$(( ($(date +%s%N) - $1) / 100000000 ))
  echo "$((ds / 10)).$((ds % 10))"
}

guest_boot ()
{
  local step=$1 socket=$2 conns=$3 seconds=$4 accel i
  guest_step=$step
  guest_log=$tmp/boot-$step.log
  # Held open read-write by the test, the fifo never gives qemu an EOF.
  mkfifo "$tmp/console-$step"
  exec {guest_fd}<>"$tmp/console-$step"
  for accel in $(_guest_accels); do
    guest_start=$(date +%s%N)
    _guest_qemu "$accel" "$step" "$socket" "$conns" "$seconds"
    for (( i = 0; i < 1200; i++ )); do
      if grep -q "SGBLK-INIT" "$guest_log"; then
        echo "guest ($step): $accel, init after $(_guest_since "$guest_start") s"
        return 0
      fi
      kill -0 "$guest_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$guest_pid" 2>/dev/null && { tail -n 30 "$guest_log"; fail "the guest did not start within 120 s"; }
    if [ "$accel" = kvm ]; then
      echo "guest ($step): qemu could not run the guest under KVM; retrying under TCG:"
      tail -n 5 "$guest_log"
      mv "$guest_log" "$guest_log.kvm"
      # Its serial bridges may have connected to the daemon: those
      # connections end in the handshake, which the daemon logs.
      guest_aborted_conns=$(( ${guest_aborted_conns:-0} + conns ))
      continue
    fi
    cat "$guest_log"
    fail "qemu exited before the guest started"
  done
}

# _guest_trouble: fail if the console shows a failure or kernel trouble.
_guest_trouble ()
{
  if grep -qE "SGBLK-RESULT FAIL|Kernel panic|Oops|BUG:|hung_task" "$guest_log"; then
    tr -d '\r' <"$guest_log" | grep -E 'SGBLK|nbd0|serial-bridge|stall:|Kernel panic|Oops|BUG:|hung_task' || true
    [ -z "${guest_daemon:-}" ] || show_sgblkd "$guest_daemon"
    fail "guest step $guest_step failed"
  fi
}

guest_wait ()
{
  local marker=$1 i
  for (( i = 0; i < $2 * 10; i++ )); do
    grep -q "SGBLK-$marker" "$guest_log" && {
      echo "guest ($guest_step): $marker after $(_guest_since "$guest_start") s"
      return 0
    }
    _guest_trouble
    kill -0 "$guest_pid" 2>/dev/null || { tail -n 30 "$guest_log"; fail "qemu exited before SGBLK-$marker"; }
    sleep 0.1
  done
  tail -n 30 "$guest_log"
  fail "no SGBLK-$marker from the guest within $2 s"
}

guest_answer () { echo go >&"$guest_fd"; }

guest_finish ()
{
  local i
  for (( i = 0; i < $1 * 10; i++ )); do
    kill -0 "$guest_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$guest_pid" 2>/dev/null && {
    tail -n 30 "$guest_log"
    [ -z "${guest_daemon:-}" ] || show_sgblkd "$guest_daemon"
    fail "the guest did not power off within $1 s"; }
  wait "$guest_pid" || true
  guest_pid=
  exec {guest_fd}>&-
  tr -d '\r' <"$guest_log" | grep -E 'SGBLK-RESULT|nbd0|serial-bridge|files|hog|pswpout' || true
  _guest_trouble
  grep -q "SGBLK-RESULT DONE $guest_step" "$guest_log" ||
    { tail -n 30 "$guest_log"; fail "guest step $guest_step did not finish"; }
  echo "guest ($guest_step): powered off after $(_guest_since "$guest_start") s"
}
