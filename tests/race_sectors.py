#!/usr/bin/env python3
"""One side of a race on a few sectors of one disk, through NBD or FUSE.

The 'full' side rewrites whole 512-byte sectors; the 'partial' side writes
the first 100 bytes of the same sectors (read-modify-write below it).  The
partial side never writes bytes 100..511, so the full side knows exactly
what they must hold: its own last write.  Before each rewrite it reads the
sector back, and a mismatch is a lost update: a read-modify-write read the
sector before the full write and wrote it back after.

Each side runs until it has made --writes writes and the other side has
too (each says so with a file), so that every write counted raced.
Prints 'SIDE: N writes, M lost updates' and exits 1 if M > 0.
"""
import argparse
import os
import random
import sys
import time

SECTOR = 512
PARTIAL = 100


def pattern(tag, n, sector, length):
    head = b"%s %d %d|" % (tag, n, sector)
    return (head * (length // len(head) + 1))[:length]


class NbdDisk:
    def __init__(self, uri):
        import nbd
        self.h = nbd.NBD()
        # Unaligned writes go to the server as they are.
        self.h.set_strict_mode(self.h.get_strict_mode() & ~nbd.STRICT_ALIGN)
        self.h.connect_uri(uri)

    def pread(self, n, off):
        return self.h.pread(n, off)

    def pwrite(self, buf, off):
        self.h.pwrite(buf, off)

    def close(self):
        self.h.shutdown()


class FileDisk:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)

    def pread(self, n, off):
        return os.pread(self.fd, n, off)

    def pwrite(self, buf, off):
        if os.pwrite(self.fd, buf, off) != len(buf):
            raise OSError("short write")

    def close(self):
        os.close(self.fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--via", choices=["nbd", "fuse"], required=True)
    ap.add_argument("--target", required=True, help="NBD URI or the FUSE file")
    ap.add_argument("--side", choices=["full", "partial"], required=True)
    ap.add_argument("--sectors", type=int, default=16)
    ap.add_argument("--first", type=int, default=0, help="first sector of the hot set")
    ap.add_argument("--writes", type=int, default=50000)
    ap.add_argument("--done-dir", required=True)
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()

    disk = NbdDisk(a.target) if a.via == "nbd" else FileDisk(a.target)
    tag = b"F" if a.side == "full" else b"P"
    mine = os.path.join(a.done_dir, a.side)
    other = os.path.join(a.done_dir, "partial" if a.side == "full" else "full")
    last = {}                       # full side: sector -> its last write
    writes = lost = 0
    rng = random.Random(os.getpid())
    deadline = time.monotonic() + a.timeout
    while True:
        if writes >= a.writes:
            if not os.path.exists(mine):
                open(mine, "w").close()
            if os.path.exists(other):
                break
        if time.monotonic() > deadline:
            print("%s: gave up waiting for the other side" % a.side, file=sys.stderr)
            return 2
        s = a.first + rng.randrange(a.sectors)
        off = s * SECTOR
        if a.side == "full":
            if s in last:
                got = disk.pread(SECTOR, off)
                if got[PARTIAL:] != last[s][PARTIAL:]:
                    lost += 1
                    if lost <= 5:
                        print("lost update in sector %d: bytes %d.. hold %r, not %r"
                              % (s, PARTIAL, got[PARTIAL:PARTIAL + 24], last[s][PARTIAL:PARTIAL + 24]),
                              file=sys.stderr)
            buf = pattern(tag, writes, s, SECTOR)
            disk.pwrite(buf, off)
            last[s] = buf
        else:
            disk.pwrite(pattern(tag, writes, s, PARTIAL), off)
        writes += 1
    # The last word: every sector's tail is the full side's last write.
    if a.side == "full":
        for s, buf in last.items():
            if disk.pread(SECTOR, s * SECTOR)[PARTIAL:] != buf[PARTIAL:]:
                lost += 1
    disk.close()
    print("%s (%s): %d writes, %d lost updates" % (a.side, a.via, writes, lost))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
