#!/usr/bin/env bash
# A reload that removes an export whose FUSE file is open (a loop device
# under a mounted ext4) leaves the file to that user: new opens no
# longer find it, the mounted filesystem goes on being written and read,
# and only when the loop device lets go is the mount taken down and the
# export closed, its cache flushed to its file.  The file then holds the
# filesystem, clean.
. "${top_srcdir:-.}/tests/functions.sh"
requires_fuse_and_loop
requires fsck.ext4 mkfs.ext4 sha256sum

fuse_mountpoint
mkdir "$tmp/fs"
cleanup_fn "mountpoint -q '$tmp/fs' && umount '$tmp/fs'"
conf=$tmp/sgblkd.conf
cat >"$conf" <<CONF
[keep]
size = 16M

[gone]
file = $tmp/gone.img
create = yes
size = 64M
fuse = $mnt
CONF
start_sgblkd cfg --config "$conf"
log=$tmp/cfg.log

attach_loop "$mnt/gone"
mkfs.ext4 -q "$loop"
mount "$loop" "$tmp/fs"
head -c 8M /dev/urandom >"$tmp/fs/before"

# The reload removes it while the filesystem is mounted.
sed -i '/^\[gone\]/,$d' "$conf"
kill -HUP "$pid_cfg"
for i in $(seq 50); do grep -q "export 'gone' was removed" "$log" && break; sleep 0.1; done
grep -q "export 'gone' was removed from the configuration: it refuses new clients and is closed when its 0 connections and 1 open of its FUSE file end" "$log" ||
  { cat "$log"; fail "the removal did not say it waits for the open FUSE file"; }
[ -e "$mnt/gone" ] && fail "the removed export's file is still there for new opens"
ls "$mnt" | grep -qx gone && fail "the removed export's file is still listed"
mountpoint -q "$mnt" || fail "the mount went while a loop device held its file"

# Its user goes on: writes and reads through the mounted filesystem.
sleep 2                               # (a few of the daemon's ticks)
head -c 8M /dev/urandom >"$tmp/fs/after"
sync
(cd "$tmp/fs" && sha256sum before after) >"$tmp/sums"
echo 3 >/proc/sys/vm/drop_caches
(cd "$tmp/fs" && sha256sum --quiet -c "$tmp/sums") || fail "the filesystem changed under its user"
grep -q "export 'gone' closed" "$log" && fail "the export was closed while its file was open"

umount "$tmp/fs"
losetup -d "$loop"
for i in $(seq 100); do grep -q "export 'gone' closed: flushed and released" "$log" && break; sleep 0.1; done
grep -q "export 'gone' closed: flushed and released" "$log" ||
  { cat "$log"; fail "the export was not closed when its last open was"; }
for i in $(seq 50); do mountpoint -q "$mnt" || break; sleep 0.1; done
mountpoint -q "$mnt" && fail "the mount stayed after the export closed"

# What the filesystem holds was flushed to the export's file.
fsck.ext4 -fn "$tmp/gone.img" || fail "the file of the closed export fails fsck"
attach_loop "$tmp/gone.img"
mount -o ro "$loop" "$tmp/fs"
(cd "$tmp/fs" && sha256sum --quiet -c "$tmp/sums") || fail "the closed export's file lost data"
umount "$tmp/fs"
nbdinfo --size "nbd+unix:///keep?socket=$tmp/cfg.sock" >/dev/null || fail "the other export was not served"
stop_sgblkd cfg
echo "a removed export's FUSE file stayed for its loop device, then closed flushed"
