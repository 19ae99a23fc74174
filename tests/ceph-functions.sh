# A throw-away single-node Ceph cluster for the RBD store's tests and
# benchmark: one monitor and one OSD (memstore: the data lives in the
# OSD's memory), no authentication, pools of one replica, all on
# 127.0.0.1 in $tmp/ceph.  Source it after tests/functions.sh, then:
#   ceph_start            # sets $CEPH_CONF, $ceph_mon_pid, $ceph_osd_pid
#   rbd create --size 256M rbd/img
#   sgblkd ... "rbd:rbd/img:conf=$CEPH_CONF"
# The cluster is killed at exit (cleanup_fn).  Nothing here touches
# /etc/ceph or any other cluster: every path is in the conf file, and the
# ceph and rbd commands are pointed at it through CEPH_CONF.
# CEPH_MEMSTORE_BYTES: the OSD's capacity, in memory (2 GiB).
# CEPH_AUTH=cephx: authentication on (default none); the ceph and rbd
# commands use client.admin's key from the cluster's keyring.
# The caller provides skip, requires, fail and cleanup_fn (tests/functions.sh
# does; contrib/bench/nbd-rbd.sh defines its own).

# requires_ceph: skip unless the cluster's programs are installed.
requires_ceph ()
{
  [ "$(id -u)" -eq 0 ] || skip "needs root to run the Ceph daemons"
  requires ceph-mon ceph-osd ceph rbd monmaptool ceph-authtool ss python3
}

# requires_rbd_store [qemu]: requires_ceph, and skip unless sgblkd was
# built with the RBD store and (with qemu) qemu-img has its rbd: driver.
requires_rbd_store ()
{
  requires_ceph
  "$SGBLKD" -f "rbd:rbd/x:conf=/dev/null" 2>&1 | grep -q "without RBD" &&
    skip "sgblkd was built without RBD support"
  if [ "${1-}" = qemu ]; then
    requires qemu-img
    qemu-img --help | grep -qw rbd || skip "qemu-img has no rbd driver (qemu-block-extra)"
  fi
  return 0
}

# stalled_requests_cost_mem_uri_nothing PID MEM_URI LOG SECONDS: while
# PID (a client whose requests wait on a stopped OSD, its output in
# $tmp/eio.out) still waits, 32 MiB go into MEM_URI, another export of the
# same daemon, and back; then PID must succeed (its requests got EIO), and
# LOG must say that requests were not answered within SECONDS.
stalled_requests_cost_mem_uri_nothing ()
{
  local eio=$1 mem_uri=$2 log=$3 secs=$4 i
  sleep 1
  random_file "$tmp/mem" 32
  nbdcopy "$tmp/mem" "$mem_uri"
  nbdsh -u "$mem_uri" -c 'h.flush()'
  nbdcopy "$mem_uri" "$tmp/mem.out"
  cmp -n $((32 << 20)) "$tmp/mem" "$tmp/mem.out" ||
    fail "the memory export did not round-trip while the OSD was stopped"
  kill -0 "$eio" 2>/dev/null ||
    { cat "$tmp/eio.out"; fail "the memory export was served only after the stalled requests failed"; }
  wait "$eio" || { cat "$tmp/eio.out"; fail "the requests on the stopped OSD did not fail with EIO"; }
  cat "$tmp/eio.out"
  for i in $(seq 30); do grep -q "not answered by the cluster within $secs s" "$log" && break; sleep 0.2; done
  grep -q "not answered by the cluster within $secs s" "$log" || fail "the timeouts were not logged"
}

# SECONDS WHAT COMMAND...: until it succeeds.  (Generous: a loaded CI
# machine took more than 30 s to bring the OSD up once; a healthy start
# takes about 10.)
_ceph_wait ()
{
  local secs=$1 what=$2 i; shift 2
  for i in $(seq $(( secs * 5 ))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -n 20 "$tmp"/ceph/*.log >&2 2>/dev/null
  fail "Ceph: $what within $secs s"
}

# ceph_start [POOL]: start the cluster and create POOL (default rbd).
# One cluster at a time on the machine (make -j2, or a benchmark beside
# the tests): the lock (fd 9) is held until the caller exits; the
# daemons do not inherit it.  A cluster whose OSD does not come up is
# killed and made again, up to five times: under load an OSD sometimes
# sends its first command to the monitor before it has the monitor's
# map (fsid all zeroes), is refused with "wrong fsid", and exits.
ceph_start ()
{
  local lock=${TMPDIR:-/tmp}/sgblk-ceph-test.lock try
  exec 9>"$lock"
  flock -w 1800 9 || fail "Ceph: another test's cluster held $lock for 30 minutes"
  for try in 1 2 3 4 5; do
    _ceph_start_once "$@" && return 0
    echo "Ceph: the cluster did not come up (try $try of 5); starting a new one" >&2
    tail -n 5 "$tmp"/ceph/osd.*.log >&2 2>/dev/null || true
    # What the monitor made of it (a refused OSD: the two fsids).
    grep -h "handle_command on fsid\|wrong fsid" "$tmp"/ceph/mon.*.log >&2 2>/dev/null || true
    kill -KILL "$ceph_osd_pid" "$ceph_mon_pid" 2>/dev/null || true
    wait "$ceph_osd_pid" "$ceph_mon_pid" 2>/dev/null || true   # (their status: killed)
    rm -rf "$tmp/ceph"
    # Refusals have come in bursts, several starts in a row: let it pass.
    sleep $(( 5 * try ))
  done
  fail "Ceph: no cluster came up in five tries"
}

_ceph_start_once ()
{
  local pool=${1:-rbd} d=$tmp/ceph port fsid try
  mkdir -p "$d/mon" "$d/osd" "$d/run"
  fsid=$(cat /proc/sys/kernel/random/uuid)
  export CEPH_CONF=$d/ceph.conf
  for try in $(seq 5); do
    # A port free a moment ago; if someone takes it meanwhile, the
    # monitor fails to bind (at once: no bind retries) and we try again.
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$port
public addr = 127.0.0.1
ms bind msgr2 = false
ms bind retry count = 1
auth cluster required = ${CEPH_AUTH:-none}
auth service required = ${CEPH_AUTH:-none}
auth client required = ${CEPH_AUTH:-none}
keyring = $d/keyring
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-2147483648}
osd data = $d/osd
osd journal size = 0
mon data = $d/mon
run dir = $d/run
admin socket = $d/run/\$name.asok
pid file = $d/run/\$name.pid
log file = $d/\$name.log
log to stderr = false
err to stderr = false
crash dir = $d/crash
# A client killed with SIGKILL holds the image's exclusive lock until
# its watch expires: keep that short for the restart checks.
osd client watch timeout = 5
rbd blocklist on break lock = true
# The device class is of no use here.  (The OSD's first commands to its
# monitor at start can go out before it has the monitor's map, with an
# fsid of zeroes; the monitor refuses them with "wrong fsid", and the
# OSD exits: ceph_start then makes a new cluster.)
osd class update on start = false
EOF
    [ "${CEPH_AUTH:-none}" = none ] || printf '[osd]\nkeyring = %s\n' "$d/osd.keyring" >>"$CEPH_CONF"
    rm -rf "$d/mon" && mkdir -p "$d/mon"
    ceph-authtool --create-keyring "$d/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$d/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
      --cap mgr 'allow *' >/dev/null
    monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$port]" "$d/monmap" >/dev/null
    ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$d/monmap" --keyring "$d/keyring"
    ceph-mon -c "$CEPH_CONF" -i a -f >/dev/null 2>&1 9>&- &
    ceph_mon_pid=$!
    cleanup_fn "kill -KILL $ceph_mon_pid 2>/dev/null; kill -CONT $ceph_mon_pid 2>/dev/null"
    for i in $(seq 100); do
      kill -0 "$ceph_mon_pid" 2>/dev/null || break
      ss -ltnpH "sport = :$port" 2>/dev/null | grep -q "pid=$ceph_mon_pid," && break
      sleep 0.1
    done
    kill -0 "$ceph_mon_pid" 2>/dev/null && break
    grep -q "Address already in use" "$d/mon.a.log" 2>/dev/null ||
      { tail -n 20 "$d/mon.a.log" >&2; fail "Ceph: the monitor exited at start"; }
  done
  _ceph_wait 90 "the monitor did not answer" ceph --connect-timeout 2 mon stat
  local id uuid
  uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(ceph osd create "$uuid")
  [ "${CEPH_AUTH:-none}" = none ] ||
    ceph auth get-or-create "osd.$id" mon 'allow profile osd' osd 'allow *' mgr 'allow profile osd' \
      -o "$d/osd.keyring" >/dev/null || fail "Ceph: no key for osd.$id"
  ceph-osd -c "$CEPH_CONF" -i "$id" --mkfs --osd-uuid "$uuid" >/dev/null 2>&1 ||
    { tail "$d"/osd.*.log >&2; fail "Ceph: ceph-osd --mkfs failed"; }
  ceph-osd -c "$CEPH_CONF" -i "$id" -f >/dev/null 2>&1 9>&- &
  ceph_osd_pid=$!
  cleanup_fn "kill -CONT $ceph_osd_pid 2>/dev/null; kill -KILL $ceph_osd_pid 2>/dev/null"
  # A healthy start takes about 10 s, 30 s on a loaded machine.  An OSD
  # that exits instead (seen: its monitor refused it with "wrong fsid")
  # is given up on at once.
  local i
  for i in $(seq 120); do
    ceph --connect-timeout 5 osd dump 2>/dev/null | grep -q "^osd.$id up" && break
    kill -0 "$ceph_osd_pid" 2>/dev/null ||
      { echo "Ceph: osd.$id exited at start" >&2; return 1; }
    sleep 0.5
  done
  [ "$i" -lt 120 ] || { echo "Ceph: osd.$id did not come up within 60 s" >&2; return 1; }
  # (Retried, not left to set -e: on a loaded machine a monitor command
  # may time out, which ended a CI run without a word.)
  _ceph_wait 90 "pool $pool could not be created" ceph osd pool create "$pool" 8 8
  _ceph_wait 90 "pool $pool could not be given to rbd" ceph osd pool application enable "$pool" rbd
  _ceph_wait 90 "pool $pool did not become usable" rbd -p "$pool" ls
}
