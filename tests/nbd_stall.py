#!/usr/bin/env python3
"""Clients that do not keep up with their replies, for sgblk's isolation
tests: one that pipelines reads and never reads a reply, one that drains
its replies slowly, and one that pipelines writes and never reads a reply.
They speak just enough NBD (tests/nbd_raw.py: fixed newstyle, simple
replies) and are bounded in requests and in time.

As a program:  nbd_stall.py hold SOCKET READY RELEASE SECONDS
connects a client that never reads and a slow drainer to SOCKET, creates
the file READY once both have queued their reads, and holds them until the
file RELEASE exists or SECONDS pass.
"""
import os
import socket
import struct
import sys
import threading
import time

import nbd_raw

MiB = 1 << 20
SIMPLE_REPLY_MAGIC = 0x67446698


def small_buffers(s, size=4096):
    """Shrink the socket's buffers, so that a server's replies back up
    after a few KiB rather than after the system's default."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def open_client(path, small=True):
    s = nbd_raw.connect(path)
    if small:
        small_buffers(s)
    nbd_raw.handshake(s)
    return s


def read_simple_reply(s):
    """(error, cookie) of the next simple reply header."""
    magic, error, cookie = struct.unpack(">IIQ", nbd_raw.recv_exact(s, 16))
    if magic != SIMPLE_REPLY_MAGIC:
        raise AssertionError("bad reply magic 0x%08x (cookie 0x%x)"
                             % (magic, cookie))
    return error, cookie


def never_reads(path, count=32, length=MiB, offset=0):
    """A client that queues count reads of length bytes and never reads a
    reply.  Returns its socket: closing it lets the server go on."""
    s = open_client(path)
    for i in range(count):
        nbd_raw.request(s, nbd_raw.CMD_READ, offset, length, cookie=0xF000 + i)
    return s


class SlowDrainer(threading.Thread):
    """A client that keeps `depth` reads of `length` bytes queued and takes
    in its replies at `rate` bytes a second, until stop()."""

    def __init__(self, path, depth=8, length=MiB, rate=256 * 1024, offset=0):
        super().__init__(daemon=True)
        self.s = open_client(path)
        self.depth, self.length, self.rate = depth, length, rate
        self.offset = offset
        self.done = threading.Event()
        self.received = 0
        self.sent = 0
        for _ in range(depth):
            self._request()
        # Short waits from here on, for run()'s pacing; not before: on a
        # loaded machine the first requests may take longer than that to
        # go out, which says nothing about the server.
        self.s.settimeout(0.2)

    def _request(self):
        nbd_raw.request(self.s, nbd_raw.CMD_READ, self.offset, self.length,
                        cookie=0xD000 + self.sent)
        self.sent += 1

    def run(self):
        start = time.monotonic()
        try:
            while not self.done.is_set():
                due = start + self.received / self.rate
                if time.monotonic() < due:          # ahead of the rate
                    time.sleep(min(0.05, due - time.monotonic()))
                    continue
                try:
                    b = self.s.recv(16 * 1024)
                except socket.timeout:
                    continue
                if not b:
                    return
                self.received += len(b)
                # For each reply taken in, queue another read.
                while self.received >= (self.sent - self.depth + 1) * (16 + self.length):
                    self._request()
        except OSError:
            return

    def stop(self):
        self.done.set()
        self.join(5)
        self.s.close()


class Writer(threading.Thread):
    """A client that pipelines `count` writes of `length` bytes (over the
    first `span` bytes of the disk, round and round) and never reads a
    reply; stop() ends it sooner.  `sent` counts the bytes of the requests
    the server has taken whole.  Blocking sends hold the GIL for none of
    their time, so several writers in one process push at full speed."""

    def __init__(self, path, length, span, count):
        super().__init__(daemon=True)
        self.s = open_client(path, small=False)
        self.length, self.span, self.count = length, span, count
        self.sent = 0

    def run(self):
        payload = bytes([0x5a]) * self.length
        try:
            for i in range(self.count):
                off = (i * self.length) % self.span
                hdr = struct.pack(">IHHQQI", nbd_raw.REQUEST_MAGIC, 0,
                                  nbd_raw.CMD_WRITE, 0xE000 + i, off,
                                  self.length)
                self.s.sendall(hdr)
                self.s.sendall(payload)
                self.sent += len(hdr) + self.length
        except OSError:
            return                      # stop() shut the socket down

    def stop(self):
        # Wakes a send blocked on the full socket.
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.join(5)
        self.s.close()


def hold(path, ready, release, seconds):
    f = never_reads(path)
    d = SlowDrainer(path, offset=4 * MiB)
    d.start()
    open(ready, "w").close()
    deadline = time.monotonic() + seconds
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.1)
    d.stop()
    f.close()


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "hold":
        sys.exit("usage: nbd_stall.py hold SOCKET READY RELEASE SECONDS")
    hold(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
