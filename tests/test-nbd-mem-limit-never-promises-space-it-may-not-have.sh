#!/usr/bin/env bash
# Block status (base:allocation) with HOLE clear, and a zero with
# NO_HOLE, promise that writing there never fails for lack of space.
# An in-memory disk whose --mem-limit cannot hold its whole size raw (an
# overcommitted, compressed disk) cannot keep that promise without
# reserving each block's raw size, which would undo the compression: it
# reports its data as HOLE without ZERO (contents not known to be zero),
# and its NO_HOLE zeroes as holes; nbdcopy and qemu-img convert still
# copy that data.  A disk whose limit holds it all reports data with
# HOLE clear and keeps NO_HOLE zeroes allocated, and rewriting any of it
# with data that compresses worse never fails, even when the disk is
# full.  On both, every ENOSPC lands on an area last reported as a hole.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh nbdcopy qemu-img cmp

# check NAME SIZE OVERCOMMITTED: the promise, on the disk just started.
check ()
{
  nbdsh -c - <<PY
import errno, os, random
random.seed(11)
over = $3
SIZE = $2
BS = 65536
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_unix("$sock")

def flags_at(off):
    """base:allocation flags of the extent at off."""
    got = []
    def cb(ctx, o, entries, err):
        if ctx == nbd.CONTEXT_BASE_ALLOCATION:
            got.extend(entries[1::2])
        return 0
    h.block_status(BS, off, cb, nbd.CMD_FLAG_REQ_ONE)
    assert got, "no extent at %d" % off
    return got[0]

def compressible(i):
    return ((b"block %08d of the disk; " % i) * (BS // 27 + 1))[:BS]

# Compressible data, half the disk's worth.
model = {}
for i in range(SIZE // BS // 2):
    h.pwrite(compressible(i), i * BS)
    model[i] = compressible(i)
for i in model:
    f = flags_at(i * BS)
    if over:
        assert f == nbd.STATE_HOLE, "data block %d: flags %d, not HOLE alone" % (i, f)
    else:
        assert f == 0, "data block %d: flags %d, not allocated" % (i, f)
assert flags_at(SIZE - BS) == nbd.STATE_HOLE | nbd.STATE_ZERO
print("data reported", "HOLE without ZERO" if over else "allocated")

# A zero with NO_HOLE: provisioned where the disk can promise it.
z = SIZE // 2
h.zero(4 * BS, z, nbd.CMD_FLAG_NO_HOLE)
model.update({z // BS + k: bytes(BS) for k in range(4)})
f = flags_at(z)
if over:
    assert f == nbd.STATE_HOLE | nbd.STATE_ZERO, "NO_HOLE zero: flags %d" % f
else:
    assert f & nbd.STATE_HOLE == 0, "NO_HOLE zero: flags %d, a hole" % f
assert h.pread(4 * BS, z) == bytes(4 * BS)
print("NO_HOLE zero reported flags", f)

# Fill the disk with incompressible data; note what each failure hit.
enospc = 0
for i in range(SIZE // BS):
    if i in model and random.random() < 0.5:
        continue                          # keep some blocks as they are
    f = flags_at(i * BS)
    data = os.urandom(BS)
    try:
        h.pwrite(data, i * BS)
        model[i] = data
    except nbd.Error as e:
        assert e.errnum == errno.ENOSPC, e
        assert f & nbd.STATE_HOLE, "ENOSPC on block %d, reported allocated (flags %d)" % (i, f)
        enospc += 1
        model[i] = h.pread(BS, i * BS)    # a failed write may have landed in part
print("filled: ENOSPC on", enospc, "blocks, each reported a hole")
assert enospc > 0 or not over

# Rewrite every block held with data that compresses worse than what it
# holds (random over compressible and zeroes, compressible over random):
# never ENOSPC where the disk said allocated.
refused = 0
for i in sorted(model):
    f = flags_at(i * BS)
    worse = model[i][:6] == b"block " or model[i] == bytes(BS)
    data = os.urandom(BS) if worse else compressible(i)
    try:
        h.pwrite(data, i * BS)
        model[i] = data
    except nbd.Error as e:
        assert e.errnum == errno.ENOSPC, e
        assert f & nbd.STATE_HOLE, "ENOSPC rewriting block %d, reported allocated (flags %d)" % (i, f)
        refused += 1
        model[i] = h.pread(BS, i * BS)
print("rewrites refused:", refused, "of", len(model))
assert refused == 0 or over
for i, d in model.items():
    assert h.pread(BS, i * BS) == d, "block %d differs" % i
with open("$tmp/$1.model", "wb") as out:
    for i in range(SIZE // BS):
        out.write(model.get(i, bytes(BS)))
h.shutdown()
PY
  [ $? -eq 0 ] || fail "$1: the disk broke its promise (above)"
  # What HOLE without ZERO does to copying tools: they copy it as data.
  nbdcopy "$uri" "$tmp/$1.copy" || fail "$1: nbdcopy failed"
  cmp "$tmp/$1.model" "$tmp/$1.copy" || fail "$1: nbdcopy lost data"
  qemu-img convert -f raw -O raw "$uri" "$tmp/$1.qemu" || fail "$1: qemu-img convert failed"
  cmp "$tmp/$1.model" "$tmp/$1.qemu" || fail "$1: qemu-img convert lost data"
  echo "$1: nbdcopy and qemu-img convert copied every block; qemu-img map says:"
  qemu-img map -f raw --output=json "$uri" | head -n 3
}

# (33M: the least limit that holds one largest request.)
start_sgblkd over --size 96M --mem-limit 33M
check over $((96 << 20)) True
stop_sgblkd over

start_sgblkd fits --size 16M --mem-limit 17M
check fits $((16 << 20)) False
stop_sgblkd fits
