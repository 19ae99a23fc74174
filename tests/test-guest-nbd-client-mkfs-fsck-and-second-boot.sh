#!/usr/bin/env bash
# The kernel's own NBD client, for real: a qemu guest built from Debian's
# kernel, busybox and nbd-client connects to sgblkd with two connections
# (nbd-client -C 2, multi-conn), each through its own virtio-serial port
# bridged to a Unix socket, makes and checks an ext4 filesystem, and
# disconnects; a second boot, against a restarted daemon on the same file,
# checks every file's checksum.  Both connections are proved in use: the
# daemon negotiated two and holds two open while the guest is connected,
# the guest's nbd0 has one hardware queue per connection, the bridge saw
# each connection carry requests, and each ends with NBD_CMD_DISC.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/guest-functions.sh"

boot ()   # STEP DAEMON
{
  local pid line negotiated q bytes
  eval "pid=\$pid_$2"
  guest_daemon=$2
  guest_boot "$1" "$sock" 2 300
  guest_wait READY 120
  kill -USR1 "$pid"
  for q in $(seq 50); do grep -q 'nbd: connections open' "$tmp/$2.log" && break; sleep 0.1; done
  line=$(grep 'nbd: connections open' "$tmp/$2.log" | tail -n 1)
  negotiated=$(grep -c "transmission on export" "$tmp/$2.log" || true)
  echo "daemon ($2), guest connected: ${line#*nbd: }; $negotiated connections negotiated"
  # (A boot retried under TCG leaves the failed attempt's connections in
  # the total, and its failed handshakes; what is open is the guest's.)
  echo "$line" | grep -q "connections open 2 " ||
    fail "the daemon does not hold exactly the guest's two connections"
  [ "$negotiated" -eq 2 ] || fail "nbd-client negotiated $negotiated connections, not 2"
  grep -q "nbd0: .*hardware queues (one per connection): 2" "$guest_log" || fail "nbd0 does not have two connections"
  guest_answer
  guest_wait IO-DONE 240
  guest_answer
  guest_finish 60
  # The bridge counts what each connection carried; a handshake alone is
  # well under 1 KiB.
  for q in 1 2; do
    bytes=$(tr -d '\r' <"$guest_log" | sed -nE "s/^serial-bridge: connection $q on .* closed: ([0-9]+) bytes to the server, ([0-9]+) from it.*/\1 + \2/p")
    [ -n "$bytes" ] || fail "no word from the bridge on connection $q"
    [ $((bytes)) -gt $((64 << 10)) ] || fail "connection $q carried no requests ($((bytes)) bytes)"
  done
  for q in $(seq 50); do
    [ "$(grep -c "client sent NBD_CMD_DISC" "$tmp/$2.log" || true)" -eq 2 ] && return 0
    sleep 0.1
  done
  fail "the guest did not disconnect both connections cleanly"
}

start_sgblkd first -v --handshake-timeout 600 --create --size 256M "$tmp/disk.img"
boot mkfs first
stop_sgblkd first
start_sgblkd second -v --handshake-timeout 600 "$tmp/disk.img"
boot check second
stop_sgblkd second
