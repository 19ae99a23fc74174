#!/usr/bin/env bash
# A loop device on the FUSE file carries a real filesystem: mkfs.ext4,
# mount, copy a tree in, umount, fsck clean, remount and compare; then the
# same after a daemon restart on a file store.
. "${top_srcdir:-.}/tests/functions.sh"
requires_fuse_and_loop
requires sha256sum

fuse_mountpoint
mkdir "$tmp/fs"
cleanup_fn "mountpoint -q '$tmp/fs' && umount '$tmp/fs'"
tree=/usr/include/linux

start_sgblkd file --create --size 128M --fuse "$mnt" "$tmp/disk.img"
attach_loop "$mnt/disk"
mkfs.ext4 -q "$loop"
mount "$loop" "$tmp/fs"
cp -r "$tree" "$tmp/fs/tree"
(cd "$tmp/fs/tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$tmp/sums"
umount "$tmp/fs"
fsck.ext4 -fn "$loop" || fail "fsck found errors"
mount "$loop" "$tmp/fs"
(cd "$tmp/fs/tree" && sha256sum --quiet -c "$tmp/sums") || fail "files changed"
umount "$tmp/fs"
losetup -d "$loop"
stop_sgblkd file
mountpoint -q "$mnt" && fail "still mounted after SIGTERM"

# The data is in the file: a new daemon serves the same filesystem.
start_sgblkd again --fuse "$mnt" "$tmp/disk.img"
attach_loop "$mnt/disk"
fsck.ext4 -fn "$loop" || fail "fsck after restart found errors"
mount -o ro "$loop" "$tmp/fs"
(cd "$tmp/fs/tree" && sha256sum --quiet -c "$tmp/sums") || fail "files changed across the restart"
umount "$tmp/fs"
losetup -d "$loop"
stop_sgblkd again
echo "$(wc -l <"$tmp/sums") files survived mkfs, fsck and a restart"
