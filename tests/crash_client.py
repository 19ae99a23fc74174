# The writer and the checker of sgblk's crash-consistency test
# (tests/test-crash-with-16-writes-in-flight-keeps-every-flushed-and-fua-write.sh).
#
#   crash_client.py write URI TRACE SEED [options]
#       Keep 16 writes in flight in the hot region until the server goes
#       away, logging every submission and completion to TRACE.
#   crash_client.py check TRACE FILE URI [options]
#       After the server was killed and restarted on FILE: check every
#       sector of the hot region, read from FILE and over NBD, against
#       TRACE.  Prints a TALLY line; exits 1 if a sector is wrong.
#
# Every 512-byte sector a write carries names that write:
#
#   0  8  magic "SGBLKCRS"
#   8  8  write id (little-endian, unique in the trace, from 1)
#  16  8  sector number on the disk (offset / 512)
#  24  4  filler kind: 0 a 16-byte pattern (compresses), 1 pseudo-random
#  28  4  crc32 of the other 508 bytes
#  32 480 filler, a function of (write id, sector, kind)
#
# so a sector read back is either zeroes (never written), or exactly the
# sector of one write the trace knows, or wrong (torn, garbage, or a
# write's data at a sector it never covered).
#
# The trace is one event a line, in the order the client saw them (one
# thread writes it, line-buffered):
#
#   W id offset length fua kind   a write, logged just before it is sent
#   A id                          the write was acknowledged
#   X id errno                    the write failed (the server went away)
#   F id                          a flush, logged just before it is sent
#   FA id                         the flush completed
#   FX id errno                   the flush failed
#   END why                       the client stopped
#
# A submission is logged before the command can reach the server and an
# acknowledgement after its reply arrived, so "line a < line b" between an
# A line and a W or F line proves the server completed the first command
# before it received the second.
import argparse
import hashlib
import math
import random
import struct
import sys
import time
import zlib

SECTOR = 512
MAGIC = b"SGBLKCRS"
HEADER = struct.Struct("<8sQQI")      # magic, write id, sector, kind; then crc32
FILLER = SECTOR - HEADER.size - 4


def sector_bytes(wid, sector, kind):
    if kind == 0:
        filler = struct.pack("<QQ", (wid * 0x9E3779B97F4A7C15) & (2**64 - 1),
                             sector ^ 0x5A5A5A5A5A5A5A5A) * (FILLER // 16)
    else:
        filler = hashlib.shake_128(struct.pack("<QQ", wid, sector)).digest(FILLER)
    head = HEADER.pack(MAGIC, wid, sector, kind)
    return head + struct.pack("<I", zlib.crc32(head + filler)) + filler


def write_data(wid, offset, length, kind):
    first = offset // SECTOR
    return b"".join(sector_bytes(wid, s, kind)
                    for s in range(first, first + length // SECTOR))


# ---------------------------------------------------------------- writer

def writer(a):
    import nbd

    rng = random.Random(a.seed)
    trace = open(a.trace, "w", buffering=1)
    h = nbd.NBD()
    h.connect_uri(a.uri)
    region_sectors = a.region_length // SECTOR
    max_sectors = a.max_write // SECTOR
    state = {"writes": 0}             # writes in flight
    keep = {}                         # write id -> its buffer, until completion

    def write_done(wid, err):
        state["writes"] -= 1
        del keep[wid]
        if err.value == 0:
            trace.write("A %d\n" % wid)
        else:
            trace.write("X %d %d\n" % (wid, err.value))
        return 1                      # retire the command

    def flush_done(fid, err):
        if err.value == 0:
            trace.write("FA %d\n" % fid)
        else:
            trace.write("FX %d %d\n" % (fid, err.value))
        return 1

    wid = fid = 0
    deadline = time.monotonic() + a.seconds
    why = "time limit"
    try:
        while time.monotonic() < deadline:
            while state["writes"] >= a.in_flight:
                h.poll(-1)
                if h.aio_is_dead():
                    raise nbd.Error("the connection is dead", 107)
            # Lengths from one sector to max_write, small ones as likely
            # as large ones (log-uniform), so that writes of one or two
            # sectors share cache blocks with others in flight.
            n = int(2 ** rng.uniform(0, math.log2(max_sectors + 1)))
            n = max(1, min(n, max_sectors, region_sectors))
            first = rng.randrange(region_sectors - n + 1)
            offset = a.region_offset + first * SECTOR
            fua = rng.random() < a.fua
            kind = rng.randrange(2)
            wid += 1
            buf = write_data(wid, offset, n * SECTOR, kind)
            keep[wid] = buf
            trace.write("W %d %d %d %d %d\n" % (wid, offset, n * SECTOR, int(fua), kind))
            state["writes"] += 1
            h.aio_pwrite(buf, offset, flags=nbd.CMD_FLAG_FUA if fua else 0,
                         completion=lambda err, wid=wid: write_done(wid, err))
            if wid % a.flush_every == 0:
                fid += 1
                trace.write("F %d\n" % fid)
                h.aio_flush(completion=lambda err, fid=fid: flush_done(fid, err))
    except nbd.Error as e:
        why = "server gone: %s" % e
    try:
        h.shutdown()
    except nbd.Error:
        pass
    del h                             # any callbacks still pending run now
    trace.write("END %s\n" % why)
    trace.close()
    print("writer: %d writes and %d flushes submitted; %s" % (wid, fid, why))


# ---------------------------------------------------------------- checker

class Write:
    __slots__ = ("wid", "offset", "length", "fua", "kind", "sub", "ack")

    def __init__(self, wid, offset, length, fua, kind, sub):
        self.wid, self.offset, self.length = wid, offset, length
        self.fua, self.kind, self.sub, self.ack = fua, kind, sub, None

    def describe(self):
        return "write %d [%d+%d%s] submitted at trace line %d, %s" % (
            self.wid, self.offset, self.length, " FUA" if self.fua else "",
            self.sub, "acknowledged at line %d" % self.ack if self.ack is not None
            else "never acknowledged")


def parse_trace(path):
    writes, flushes = {}, {}          # id -> Write; id -> [sub line, ack line]
    end = None
    for line_no, line in enumerate(open(path), 1):
        f = line.split()
        if not f:
            continue
        if f[0] == "W":
            w = Write(int(f[1]), int(f[2]), int(f[3]), f[4] == "1", int(f[5]), line_no)
            writes[w.wid] = w
        elif f[0] == "A":
            writes[int(f[1])].ack = line_no
        elif f[0] == "F":
            flushes[int(f[1])] = [line_no, None]
        elif f[0] == "FA":
            flushes[int(f[1])][1] = line_no
        elif f[0] == "END":
            end = line.split(None, 1)[1].strip() if len(f) > 1 else ""
    if end is None:
        sys.exit("checker: the trace %s has no END line: the writer did not finish" % path)
    return writes, flushes


def classify(data, s):
    """(what, write id) of the 512 bytes read at sector s."""
    if data == bytes(SECTOR):
        return "zeroes", None
    magic, wid, sector, kind = HEADER.unpack_from(data)
    if magic != MAGIC or kind > 1:
        return "garbage", None
    (crc,) = struct.unpack_from("<I", data, HEADER.size)
    if crc != zlib.crc32(data[:HEADER.size] + data[HEADER.size + 4:]):
        return "torn (bad checksum) claiming write %d" % wid, None
    if data != sector_bytes(wid, sector, kind):
        return "corrupt (good checksum, wrong filler) claiming write %d" % wid, None
    if sector != s:
        return "write %d's sector %d, misplaced" % (wid, sector), None
    return "data", wid


def checker(a):
    import nbd

    writes, flushes = parse_trace(a.trace)
    # The last flush the server completed; every write acknowledged before
    # it was sent must be durable.
    last_flush = max((sub for sub, ack in flushes.values() if ack is not None), default=0)
    durable = {w.wid for w in writes.values()
               if w.ack is not None and (w.fua or w.ack < last_flush)}
    first = a.region_offset // SECTOR
    nsect = a.region_length // SECTOR
    cover = [[] for _ in range(nsect)]  # sector -> writes covering it
    for w in writes.values():
        s0 = w.offset // SECTOR - first
        for i in range(s0, s0 + w.length // SECTOR):
            cover[i].append(w)

    with open(a.file, "rb") as f:
        disk = f.read()
    h = nbd.NBD()
    h.connect_uri(a.uri)
    served = h.pread(a.region_length, a.region_offset)
    h.shutdown()

    problems = []
    tally = {"submitted": len(writes),
             "acked": sum(w.ack is not None for w in writes.values()),
             "fua_acked": sum(w.ack is not None and w.fua for w in writes.values()),
             "flushes_completed": sum(ack is not None for sub, ack in flushes.values()),
             "durable": len(durable), "sectors": nsect, "must_sectors": 0,
             "newer_than_durable": 0, "lost_sectors": 0, "lost_writes": 0, "bad": 0}

    # Outside the hot region the disk is never written.
    outside = disk[:a.region_offset] + disk[a.region_offset + a.region_length:]
    if len(disk) != a.disk_size or outside.count(0) != len(outside):
        problems.append("BAD the file is %d bytes and has data outside the hot region" % len(disk))
        tally["bad"] += 1

    # The rule, for one sector s.  D, a write covering s, is durable if it
    # was acknowledged with FUA, or acknowledged before a flush was sent
    # that then completed.  A write X covering s is superseded by D if X
    # was acknowledged before D was sent: the server had finished X before
    # it saw D, so D is the newer data for good.  Any other write covering
    # s -- acknowledged after D was sent, or never acknowledged, in flight
    # at the kill -- may have been executed after D (completion order is
    # not submission order: two writes in flight together may land either
    # way), so its data is as legitimate as D's.  Hence s must hold a
    # write covering s that no durable write other than itself
    # supersedes: a durable write itself, or anything later in that
    # sense.  Never a superseded (older) write, never zeroes when a
    # durable write covers s, never a sector no write made.
    def check_sector(i, data, src):
        """None if sector first+i is right; else (problem, lost durable write or None)."""
        s = first + i
        what, wid = classify(data, s)
        ds = [w for w in cover[i] if w.wid in durable]
        where = "%s sector %d (offset %d)" % (src, s, s * SECTOR)
        if what == "zeroes":
            if not ds:
                return None
            d = max(ds, key=lambda w: w.sub)
            return ("LOST %s: zeroes, but the durable %s%s" % (
                where, d.describe(), durable_why(d, flushes)), d)
        if what != "data":
            return "BAD %s: %s" % (where, what), None
        x = writes.get(wid)
        if x is None or x not in cover[i]:
            return ("BAD %s: holds write %d, which %s" % (
                where, wid, "the trace does not know" if x is None else "did not cover it"), None)
        newer = [d for d in ds if d is not x and x.ack is not None and x.ack < d.sub]
        if not newer:
            return None
        d = max(newer, key=lambda w: w.sub)
        return ("LOST %s: holds %s,\n    acknowledged before the durable %s%s" % (
            where, x.describe(), d.describe(), durable_why(d, flushes)), d)

    region = disk[a.region_offset:a.region_offset + a.region_length]
    lost = set()
    served_differs = 0
    for i in range(nsect):
        ds = [w for w in cover[i] if w.wid in durable]
        if ds:
            tally["must_sectors"] += 1
        here = region[i * SECTOR:(i + 1) * SECTOR]
        there = served[i * SECTOR:(i + 1) * SECTOR]
        results = [check_sector(i, here, "file")]
        if there != here:
            # After the kill the daemon's cache is gone: it must serve
            # the file as it is.
            served_differs += 1
            results.append(check_sector(i, there, "nbd"))
        bad = [r for r in results if r is not None]
        for problem, d in bad:
            problems.append(problem)
            if d is not None:
                lost.add(d.wid)
        if any(d is not None for p, d in bad):
            tally["lost_sectors"] += 1
        elif bad:
            tally["bad"] += 1
        elif ds:
            _, wid = classify(here, first + i)
            if all(w.wid != wid for w in ds):
                tally["newer_than_durable"] += 1
    tally["lost_writes"] = len(lost)
    if served_differs:
        problems.append("BAD the restarted daemon serves other data than the file holds "
                        "in %d sectors" % served_differs)
        tally["bad"] += 1

    print("TALLY " + " ".join("%s=%d" % kv for kv in tally.items()))
    for p in problems[:a.show]:
        print(p)
    if len(problems) > a.show:
        print("... and %d more" % (len(problems) - a.show))
    return 1 if problems else 0


def durable_why(d, flushes):
    if d.fua:
        return " (durable as an acknowledged FUA write)"
    fid, (sub, ack) = min(((fid, fl) for fid, fl in flushes.items()
                           if fl[1] is not None and fl[0] > d.ack), key=lambda t: t[1][0])
    return " (durable by flush %d, sent at line %d, completed at line %d)" % (fid, sub, ack)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--region-offset", type=int, default=2 << 20)
    p.add_argument("--region-length", type=int, default=1 << 20)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("uri")
    w.add_argument("trace")
    w.add_argument("seed", type=int)
    w.add_argument("--in-flight", type=int, default=16)
    w.add_argument("--max-write", type=int, default=64 << 10)
    w.add_argument("--fua", type=float, default=0.3)
    w.add_argument("--flush-every", type=int, default=20)
    w.add_argument("--seconds", type=float, default=60)
    c = sub.add_parser("check")
    c.add_argument("trace")
    c.add_argument("file")
    c.add_argument("uri")
    c.add_argument("--disk-size", type=int, required=True)
    c.add_argument("--show", type=int, default=10)
    a = p.parse_args()
    if a.cmd == "write":
        writer(a)
        return 0
    return checker(a)


if __name__ == "__main__":
    sys.exit(main())
