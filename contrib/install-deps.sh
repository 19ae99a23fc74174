#!/bin/sh
# Install everything sgblk needs to build, test and benchmark on Debian 12
# (bookworm), from a minimal install (debootstrap --variant=minbase) up.
# Used by README's set-up commands and CI.  As root it installs directly
# (a minimal Debian has no sudo); as a user it runs itself again under
# sudo.
#
# libgnutls28-dev is NBD's TLS; gnutls-bin (certtool, psktool) makes the
# tests' keys.  nbd-server and gnuplot-nox are for contrib/bench/run.sh, which starts
# its own nbd-server with a configuration of its own.  The package's
# service reads /etc/nbd-server/config, which has no exports: that
# nbd-server quits at once ("No configured exports"), listens on nothing
# and leaves port 10809 to sgblkd.  cppcheck is CI's static analysis.
# libsystemd-dev is for socket activation and readiness notification;
# systemd brings systemd.pc (where make install puts the units),
# systemd-analyze and systemd-socket-activate for the tests; man-db's
# man is what systemd-analyze checks the units' Documentation= with.
# git is for CI's clean copies of the tree.
# python3-prometheus-client and prometheus-node-exporter read the
# --stats-file in its test; the tests run their own node exporter, on a
# port of their own, so the package's service need not run.
# librbd-dev and librados-dev build the Ceph RBD store; ceph-mon, ceph-osd
# and ceph-common run the RBD tests' throw-away cluster (the packages'
# services are not used), and qemu-block-extra is qemu's rbd: driver,
# which the tests compare against.
set -e
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 ||
    { echo "install-deps.sh: run this as root (sudo is not installed)" >&2; exit 1; }
  exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
  build-essential autoconf automake pkg-config gcc clang libclang-rt-14-dev \
  liblz4-dev libfuse3-dev fuse3 libcmocka-dev \
  libsystemd-dev systemd git \
  libnbd-bin python3-libnbd nbdkit nbdfuse qemu-utils fio nbd-server \
  mandoc man-db jq bc cpio valgrind gdb cppcheck e2fsprogs util-linux mount procps python3 \
  gnuplot-nox file python3-prometheus-client prometheus-node-exporter \
  qemu-system-x86 busybox-static nbd-client kmod \
  libgnutls28-dev gnutls-bin \
  librbd-dev librados-dev ceph-mon ceph-osd ceph-common qemu-block-extra \
  ca-certificates >/dev/null
