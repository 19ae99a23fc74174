#!/usr/bin/env python3
"""Record what real NBD clients send, as fuzz seeds.

A proxy on a Unix socket in front of a running sgblkd: every byte a
client sends is passed on and kept.  When a connection ends, its client
bytes become two seeds: the whole stream (for fuzz-nbd-stream) and, if
the client reached transmission, the bytes after its handshake with the
one negotiation byte fuzz-nbd-transmission reads first.  Seeds recorded
from real clients start the fuzzers on the requests those clients really
make (sizes, flags, pipelining, block status), not on what we guess.

  record-nbd-seeds.py LISTEN_SOCKET SGBLKD_SOCKET OUTDIR NAME

Connections are numbered: OUTDIR/fuzz-nbd-stream/NAME-1, ...; the proxy
runs until killed.  The kernel's client was recorded the same way: the
qemu guest of tests/guest-functions.sh (guest_boot mkfs PROXY 2 400),
its virtio-serial ports connected to the proxy instead of the daemon,
on a 1 MiB disk like the fuzz targets' (kernel-1m-*).  Payloads of large writes are cut at MAX_SEED bytes, so the
corpus stays small: a cut stream ends mid-request, which is a seed too.
"""
import os
import socket
import struct
import sys
import threading

IHAVEOPT = 0x49484156454F5054
OPT_EXPORT_NAME, OPT_GO, OPT_STRUCTURED_REPLY, OPT_SET_META_CONTEXT = 1, 7, 8, 10
MAX_SEED = 64 * 1024

# fuzz-nbd-transmission's negotiation byte (see fuzz-nbd-transmission.c).
MODE_STRUCTURED, MODE_BASE_ALLOCATION, MODE_EXPORT_NAME = 1, 2, 4


def split_handshake(b):
    """The negotiation byte and the offset where transmission starts in
    the client's bytes, or None if it never got there."""
    if len(b) < 4:
        return None
    pos, mode = 4, 0
    while len(b) - pos >= 16:
        magic, opt, ln = struct.unpack(">QII", b[pos:pos + 16])
        if magic != IHAVEOPT:
            return None
        payload = b[pos + 16:pos + 16 + ln]
        pos += 16 + ln
        if opt == OPT_STRUCTURED_REPLY:
            mode |= MODE_STRUCTURED
        elif opt == OPT_SET_META_CONTEXT and b"base:allocation" in payload:
            mode |= MODE_BASE_ALLOCATION
        elif opt == OPT_EXPORT_NAME:
            return mode | MODE_EXPORT_NAME, pos
        elif opt == OPT_GO:
            return mode, pos
    return None


def pump(src, dst, keep):
    try:
        while True:
            d = src.recv(65536)
            if not d:
                break
            if keep is not None:
                keep.extend(d)
            dst.sendall(d)
    except OSError:
        pass
    for s in (dst,):
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def save(outdir, name, n, b):
    def put(target, data):
        d = os.path.join(outdir, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "%s-%d" % (name, n)), "wb") as f:
            f.write(data[:MAX_SEED])
    put("fuzz-nbd-stream", bytes(b))
    hs = split_handshake(b)
    if hs is not None and hs[1] < len(b):
        put("fuzz-nbd-transmission", bytes([hs[0]]) + bytes(b[hs[1]:]))


def serve(conn, upstream, outdir, name, n):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(upstream)
    keep = bytearray()
    t = threading.Thread(target=pump, args=(up, conn, None))
    t.start()
    pump(conn, up, keep)
    t.join()
    conn.close()
    up.close()
    save(outdir, name, n, keep)


def main():
    listen, upstream, outdir, name = sys.argv[1:5]
    if os.path.exists(listen):
        os.unlink(listen)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(listen)
    ls.listen(16)
    n = 0
    while True:
        conn, _ = ls.accept()
        n += 1
        threading.Thread(target=serve, args=(conn, upstream, outdir, name, n)).start()


if __name__ == "__main__":
    main()
