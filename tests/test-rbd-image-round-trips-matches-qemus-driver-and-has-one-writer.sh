#!/usr/bin/env bash
# A Ceph RBD image served through the cache: 256 MiB of random data
# round-trip with nbdcopy, and after a FLUSH qemu's own rbd: driver reads
# the same image; block status sees a trimmed range as a hole.  A second
# writer on the image is refused (exit 1, one line), a read-only daemon on
# a snapshot serves the snapshot, an image or a cluster that is not there
# is one line,
# and a filesystem on a loop device on the FUSE file is fsck-clean.  One
# single-node cluster (tests/ceph-functions.sh) serves every check.
. "${top_srcdir:-.}/tests/functions.sh"
. "${top_srcdir:-.}/tests/ceph-functions.sh"
requires_rbd_store qemu
requires nbdcopy nbdinfo nbdsh qemu-img qemu-io

ceph_start
rbd create --size 256M rbd/img
img="rbd:rbd/img:conf=$CEPH_CONF"

# In, out, and the same through qemu's driver after a FLUSH.
random_file "$tmp/data" 256
start_sgblkd rbd --store-timeout 30 "$img"
nbdcopy "$tmp/data" "$uri"
nbdsh -u "$uri" -c 'h.flush()'
nbdcopy "$uri" "$tmp/out"
cmp "$tmp/data" "$tmp/out" || fail "the image read back differs from what was written"
qemu-img compare -f raw -F raw "$uri" "$img" ||
  fail "sgblkd's export and qemu's rbd: driver differ after a FLUSH"

# A trimmed range (whole RBD objects) reads as zeroes and is a hole.
nbdsh -u "$uri" -c 'h.trim(8 << 20, 64 << 20); h.flush()'
nbdinfo --map "$uri" | awk '$1 == 67108864 { print $2, $4 }' | grep -q "^8388608 hole" ||
  { nbdinfo --map "$uri"; fail "no 8 MiB hole at 64 MiB after the trim"; }
head -c 8M /dev/zero | cmp - <(nbdcopy "$uri" - | tail -c +$((64 * 1048576 + 1)) | head -c 8M) ||
  fail "the trimmed range does not read as zeroes"

# A second writer is refused, saying why in one line; a read-only daemon
# takes no lock and serves beside the writer.
status=0
"$SGBLKD" -f -U "$tmp/second.sock" "$img" >"$tmp/second.out" 2>&1 || status=$?
[ "$status" -eq 1 ] || fail "a second writer exited $status, want 1"
[ "$(wc -l <"$tmp/second.out")" -eq 1 ] && grep -q "in use by another client" "$tmp/second.out" ||
  { cat "$tmp/second.out"; fail "a second writer's refusal is not one line saying the image is in use"; }
start_sgblkd reader --read-only "$img"
nbdcopy "$uri" - | head -c 64M | cmp - <(head -c 64M "$tmp/data") ||
  fail "a read-only daemon beside the writer reads other data"
stop_sgblkd reader
stop_sgblkd rbd

# A snapshot is served read-only, and keeps its data after the image
# is rewritten.
rbd snap create rbd/img@s1
rbd snap protect rbd/img@s1 2>/dev/null || true
qemu-io -f raw -c 'write -P 0x5a 0 1M' "$img" >/dev/null
start_sgblkd snap --read-only "rbd:rbd/img@s1:conf=$CEPH_CONF"
nbdcopy "$uri" "$tmp/snap"
cmp <(head -c 64M "$tmp/data") <(head -c 64M "$tmp/snap") || fail "the snapshot does not hold the data of its time"
nbdsh -u "$uri" -c "$nbd_expect" -c 'expect(errno.EPERM, h.pwrite, b"x" * 512, 0)'
stop_sgblkd snap

# Images, pools and snapshots that are not there, and a cluster that is
# not there (no monitor answers): exit 1, one line each.  (A writable
# snapshot is refused the same way.)
printf '[global]\nmon host = v1:127.0.0.1:1\n' >"$tmp/nocluster.conf"
for bad in "rbd:rbd/nothere:conf=$CEPH_CONF" "rbd:nopool/img:conf=$CEPH_CONF" \
           "-r rbd:rbd/img@nosnap:conf=$CEPH_CONF" "rbd:rbd/img@s1:conf=$CEPH_CONF" \
           "--store-timeout 3 rbd:rbd/img:conf=$tmp/nocluster.conf"; do
  status=0
  "$SGBLKD" -f -U "$tmp/bad.sock" $bad >"$tmp/bad.out" 2>&1 || status=$?
  [ "$status" -eq 1 ] && [ "$(wc -l <"$tmp/bad.out")" -eq 1 ] ||
    { cat "$tmp/bad.out"; fail "$bad: exit $status, want 1 and one line"; }
  echo "refused: $(cat "$tmp/bad.out")"
done

# A filesystem on the FUSE file of an RBD image.
if [ -c /dev/fuse ] && [ -e /dev/loop-control ]; then
  rbd create --size 128M rbd/fs
  fuse_mountpoint
  mkdir "$tmp/fs"
  cleanup_fn "mountpoint -q '$tmp/fs' && umount '$tmp/fs'"
  start_sgblkd fuse --fuse "$mnt" "rbd:rbd/fs:conf=$CEPH_CONF"
  attach_loop "$mnt/disk"
  mkfs.ext4 -q "$loop"
  mount "$loop" "$tmp/fs"
  cp -r /usr/include/linux "$tmp/fs/tree"
  umount "$tmp/fs"
  fsck.ext4 -fn "$loop" || fail "fsck of the filesystem on the RBD image found errors"
  losetup -d "$loop"
  stop_sgblkd fuse
  # Durable on the cluster: fsck through qemu's driver, not through sgblk.
  qemu-img convert -f raw -O raw "rbd:rbd/fs:conf=$CEPH_CONF" "$tmp/fs.img"
  fsck.ext4 -fn "$tmp/fs.img" || fail "the filesystem read through qemu's rbd: driver has errors"
fi
echo "256 MiB round-tripped; qemu's driver agrees; one writer; snapshot served"
