#!/usr/bin/env bash
# make install puts sgblkd@.service, sgblkd@.socket and sgblkd.socket in
# systemd's unit directory, the service starting the sgblkd that make
# install put in sbindir; systemd-analyze verify finds nothing to say
# about any of them (it runs without systemd as PID 1).  The installed
# service has what --swap needs (no memory-lock limit, never the OOM
# killer's pick, CAP_IPC_LOCK and CAP_SYS_RESOURCE to raise both itself)
# and reloads with SIGHUP.
. "${top_srcdir:-.}/tests/functions.sh"
requires systemd-analyze make man
unitdir=$(sed -n 's/^systemdsystemunitdir = //p' "$top_builddir/Makefile")
[ -n "$unitdir" ] && [ "$unitdir" != no ] ||
  skip "configure found no systemd unit directory (--with-systemdsystemunitdir=DIR)"

root=$tmp/root
MAKEFLAGS= make -s -C "$top_builddir" install DESTDIR="$root" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "make install DESTDIR=$root failed"; }
for u in sgblkd@.service sgblkd@.socket sgblkd.socket; do
  [ -f "$root$unitdir/$u" ] || fail "make install did not put $u in $unitdir"
done
sgblkd=$(cd "$root" && find . -path '*/sbin/sgblkd' -type f | sed 's/^\.//')
[ -n "$sgblkd" ] || fail "make install put no sbin/sgblkd"
grep -qx "ExecStart=$sgblkd --foreground --config .*/sgblkd/%i.conf" "$root$unitdir/sgblkd@.service" ||
  { grep ExecStart "$root$unitdir/sgblkd@.service"; fail "ExecStart does not start $sgblkd"; }
! grep -n '@[a-z]*@' "$root$unitdir/sgblkd@.service" || fail "a placeholder was not substituted"

# service KEY: the values KEY has in the installed service's [Service]
# section, one a line, as systemd reads them (comments skipped).
service ()
{
  awk -v k="$1" '/^\[/ { in_service = ($0 == "[Service]") }
                 in_service && index($0, k "=") == 1 { print substr($0, length(k) + 2) }' \
    "$root$unitdir/sgblkd@.service"
}
[ "$(service LimitMEMLOCK)" = infinity ] || fail "the service does not have LimitMEMLOCK=infinity"
[ "$(service OOMScoreAdjust)" = -1000 ] || fail "the service does not have OOMScoreAdjust=-1000"
for cap in CAP_SYS_ADMIN CAP_IPC_LOCK CAP_SYS_RESOURCE; do
  service CapabilityBoundingSet | tr ' ' '\n' | grep -qx "$cap" ||
    fail "the service's CapabilityBoundingSet= lacks $cap"
done
[ "$(service ExecReload)" = '/bin/kill -HUP $MAINPID' ] ||
  fail "the service does not reload with SIGHUP"

# Verified where the installed program and man page are found: the
# copies' ExecStart points into DESTDIR, and so does MANPATH (for the
# units' Documentation=man:sgblkd(8)).
mkdir "$tmp/units"
sed "s|^ExecStart=$sgblkd|ExecStart=$root$sgblkd|" "$root$unitdir/sgblkd@.service" >"$tmp/units/sgblkd@.service"
cp "$root$unitdir/sgblkd@.socket" "$root$unitdir/sgblkd.socket" "$tmp/units/"
man=$(cd "$root" && find . -path '*/man8/sgblkd.8' | sed 's/^\.//; s|/man8/sgblkd.8$||')
cd "$tmp/units"
MANPATH=$root$man systemd-analyze verify ./sgblkd@disk1.service ./sgblkd@disk1.socket ./sgblkd.socket \
  >"$tmp/verify.log" 2>&1 || { cat "$tmp/verify.log"; fail "systemd-analyze verify failed"; }
[ ! -s "$tmp/verify.log" ] || { cat "$tmp/verify.log"; fail "systemd-analyze verify has complaints"; }
