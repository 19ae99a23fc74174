#!/usr/bin/env bash
# A cluster with cephx authentication on: sgblkd serves an image as a
# client of its own (client.alice, keyring from `ceph auth
# get-or-create`), named in FILE with :id= and :keyring=.  A keyring
# with the wrong secret, a keyring file that is not there, and a client
# the cluster does not know each stop the start with exit 1 and one line
# that names the problem, within the store timeout.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/ceph-functions.sh"
requires_rbd_store
requires nbdcopy timeout

CEPH_AUTH=cephx ceph_start
rbd create --size 64M rbd/img
ceph auth get-or-create client.alice mon 'profile rbd' osd 'profile rbd pool=rbd' \
  -o "$tmp/alice.keyring" >/dev/null
ceph-authtool --create-keyring "$tmp/wrong.keyring" --gen-key -n client.alice >/dev/null
img="rbd:rbd/img:conf=$CEPH_CONF"

# The right key serves.
random_file "$tmp/data" 16
start_sgblkd alice --store-timeout 10 "$img:id=alice:keyring=$tmp/alice.keyring"
nbdcopy "$tmp/data" "$uri"
nbdcopy "$uri" - | head -c 16M | cmp - "$tmp/data" || fail "client.alice's image did not round-trip"
stop_sgblkd alice

# WHAT SPEC PATTERN: the start is refused, exit 1, in one line matching
# PATTERN, well within the timeouts.
check_refused () {
  local what=$1 spec=$2 pattern=$3 status=0 t0
  t0=$(date +%s)
  timeout 60 "$SGBLKD" -f -U "$tmp/bad.sock" --store-timeout 5 "$spec" >"$tmp/bad.out" 2>&1 || status=$?
  echo "$what: $(cat "$tmp/bad.out")"
  [ "$status" -eq 1 ] || fail "$what: exit $status, want 1"
  [ "$(wc -l <"$tmp/bad.out")" -eq 1 ] || fail "$what: not one line"
  grep -q "$pattern" "$tmp/bad.out" || fail "$what: the line does not say '$pattern'"
  [ $(( $(date +%s) - t0 )) -lt 30 ] || fail "$what: took more than 30 s to refuse"
}
check_refused "a wrong secret" "$img:id=alice:keyring=$tmp/wrong.keyring" \
  "cannot authenticate to the cluster as client.alice"
check_refused "a missing keyring" "$img:id=alice:keyring=$tmp/nothere.keyring" \
  "client.alice"
check_refused "an unknown client" "$img:id=bob:keyring=$tmp/alice.keyring" \
  "client.bob"
echo "cephx: client.alice served; wrong, missing and unknown keys refused in one line"
