#!/usr/bin/env bash
# Build the test guest from Debian's packages: the kernel and modules of
# linux-image-amd64, busybox-static, and this machine's nbd-client and
# e2fsprogs with the libraries ldd lists.  Nothing binary is committed;
# the result is cached in OUTDIR (vmlinuz, initrd.img).
#
#   contrib/guest/build-initramfs.sh OUTDIR
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
fresh=1
for f in "$here/init" "$here/serial-bridge.c" "$here/hog.c" "$0"; do
  [ -s "$out/initrd.img" ] && [ "$out/initrd.img" -nt "$f" ] || fresh=0
done
[ -s "$out/vmlinuz" ] && [ "$fresh" = 1 ] && exit 0
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
apt-get download "$pkg" >/dev/null 2>&1 || { echo "cannot download $pkg" >&2; exit 1; }
dpkg-deb -x ./*.deb k
ver=$(ls k/lib/modules)
mods=k/lib/modules/$ver

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,modules,lib64,lib/x86_64-linux-gnu}
cp /bin/busybox "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod +x "$root/init"
gcc -static -O2 -o "$root/bin/serial-bridge" "$here/serial-bridge.c"
gcc -static -O2 -o "$root/bin/hog" "$here/hog.c"

# Modules in dependency order (modinfo -F depends).
order=()
add () {
  local f d
  f=$(find "$mods" -name "$1.ko" | head -n 1)
  [ -n "$f" ] || { echo "no module $1" >&2; exit 1; }
  for d in $(modinfo -F depends "$f" | tr ',' ' '); do add "$d"; done
  case " ${order[*]} " in *" $1 "*) ;; *) order+=("$1"); cp "$f" "$root/modules/" ;; esac
}
for m in virtio_pci virtio_console crc32c_generic nbd ext4; do add "$m"; done
printf '%s\n' "${order[@]}" >"$root/modules.order"

# Debian's own tools, with their libraries.
for b in /usr/sbin/nbd-client /sbin/mke2fs /sbin/e2fsck; do
  cp "$b" "$root/bin/"
  for l in $(ldd "$b" | grep -o '/[^ ]*'); do
    cp -n "$l" "$root$l" 2>/dev/null || { mkdir -p "$root$(dirname "$l")"; cp -n "$l" "$root$l"; }
  done
done
ln -s mke2fs "$root/bin/mkfs.ext4"

# Renamed into place, so that tests building at once never see half a file.
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initrd.img.$$"
cp "k/boot/vmlinuz-$ver" "$out/vmlinuz.$$"
mv "$out/vmlinuz.$$" "$out/vmlinuz"
mv "$out/initrd.img.$$" "$out/initrd.img"
echo "guest: kernel $ver, modules ${order[*]}"
