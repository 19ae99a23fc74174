#!/usr/bin/env bash
# Under a real systemd (PID 1): the socket unit listens, the first NBD
# connection starts the service, which is active with its STATUS= line
# only once it serves; its FUSE file is visible outside the service,
# the same data comes through both; systemctl stop ends it cleanly.
# The units are the built ones, under a name of the test's own in
# /run/systemd/system, with ExecStart running this build.
#
# Not part of make check, whose tests must run on machines without
# systemd as PID 1 (the tests there stand in for systemd).  Run it from a
# built tree on a machine (or a booted systemd-nspawn container) where
# systemd is PID 1:
#   top_srcdir=. top_builddir=. SGBLKD=$PWD/sgblkd \
#     contrib/systemd/check-systemctl-starts-the-service-on-the-first-connection.sh
. "${top_srcdir:-.}/tests/functions.sh"
[ "$(cat /proc/1/comm)" = systemd ] || fail "systemd is not PID 1 here: this check needs it"
[ "$(id -u)" -eq 0 ] || skip "needs root to start system units"
requires systemctl nbdinfo nbdcopy cmp
[ -c /dev/fuse ] || skip "no /dev/fuse"

t=sgblkd-test$$
unit=/run/systemd/system/$t@.service
mkdir -p "$tmp/mnt"
sed -e "s|^ExecStart=.*|ExecStart=$SGBLKD --foreground --size 64M -e disk --fuse $tmp/mnt|" \
  -e "s|sgblkd@%i.service|$t@%i.service|g" "$top_builddir/contrib/systemd/sgblkd@.service" >"$unit"
sed -e "s|/run/sgblkd/%i.sock|/run/$t/%i.sock|" "$top_srcdir/contrib/systemd/sgblkd@.socket" \
  >"/run/systemd/system/$t@.socket"
cleanup_fn "systemctl stop '$t@a.socket' '$t@a.service' 2>/dev/null; rm -f '$unit' '/run/systemd/system/$t@.socket'; systemctl daemon-reload"
systemctl daemon-reload
systemctl start "$t@a.socket"
sock=/run/$t/a.sock
[ -S "$sock" ] || fail "the socket unit does not listen on $sock"
[ "$(systemctl is-active "$t@a.service")" = inactive ] || fail "the service runs before any connection"

# The first connection starts it; Type=notify: active means serving.
[ "$(nbdinfo --size "nbd+unix:///disk?socket=$sock")" -eq $((64 << 20)) ] || fail "wrong size"
[ "$(systemctl is-active "$t@a.service")" = active ] || fail "the service is not active"
status=$(systemctl show -p StatusText --value "$t@a.service")
[ "$status" = "Serving an in-memory disk of 64 MiB as export 'disk' on 1 socket, file $tmp/mnt/disk" ] ||
  fail "STATUS: '$status'"
[ -f "$tmp/mnt/disk" ] || fail "the FUSE file is not visible outside the service"
random_file "$tmp/in" 4
dd if="$tmp/in" of="$tmp/mnt/disk" bs=1M conv=notrunc,fsync status=none
nbdcopy "nbd+unix:///disk?socket=$sock" "$tmp/out"
cmp -n $((4 << 20)) "$tmp/in" "$tmp/out" || fail "NBD reads other data than the FUSE file got"

systemctl stop "$t@a.service"
[ "$(systemctl show -p Result --value "$t@a.service")" = success ] || fail "stopped with a failure"
[ "$(systemctl show -p ExecMainStatus --value "$t@a.service")" -eq 0 ] || fail "exit status not 0"
! mountpoint -q "$tmp/mnt" || fail "the FUSE file is still mounted after stop"
[ -S "$sock" ] || fail "the daemon unlinked the socket unit's socket"
