/* libFuzzer target: NBD transmission, the handshake already done.
 *
 * The first input byte chooses the negotiation (bit 0 structured
 * replies, bit 1 SET_META_CONTEXT base:allocation, bit 2 EXPORT_NAME
 * instead of GO, bit 3 the read-only export); the target sends that
 * handshake itself, so the fuzzer spends its effort on requests: sizes,
 * offsets, flags, commands, payloads.  The rest is what a client sends
 * after its handshake, byte for byte, as fuzz/record-nbd-seeds.py
 * records it from real clients.
 *
 * The target follows the request stream as the server must (a 28-byte
 * header, then a WRITE's payload) and numbers the cookies, so it can
 * check the replies: each request read in full before the stream ends
 * (or before NBD_CMD_DISC or a bad magic) gets exactly one reply; no
 * reply names an unknown cookie; structured replies only when
 * negotiated, and never a simple reply to a READ then; data and hole
 * chunks and error offsets inside their request; an ERROR_OFFSET only
 * for a valid range; block status only when negotiated, its extents
 * inside the disk, one no longer than the request with REQ_ONE; only the
 * errors the spec names.  A broken rule aborts, which libFuzzer reports as a crash. */
#include <config.h>

#include "nbd-harness.h"
#include <limits.h>
#include <stdio.h>

#include "../src/nbd/protocol.h"

#define MODE_STRUCTURED 1
#define MODE_BASE_ALLOCATION 2
#define MODE_EXPORT_NAME 4
#define MODE_READ_ONLY 8
#define MAX_REQS 4096
#define CHUNK_MAX (1u << 20)           /* non-data chunk payloads we keep */

struct req {
  uint16_t flags, type;
  uint64_t offset;
  uint32_t length;
  bool done;
};

struct check {
  bool structured, base_allocation, read_only;
  unsigned options;                    /* options answered so far */
  unsigned before_name;                /* answered before EXPORT_NAME's; or
                                        * UINT_MAX with GO */
  bool greeted, in_transmission;
  struct req reqs[MAX_REQS];
  unsigned nreqs;                      /* requests owed a reply */
  /* Reply stream parser: unparsed bytes, and data bytes to skip. */
  uint8_t *acc;
  size_t nacc;
  uint64_t skip;
};

#define CHECK(cond) do { if (!(cond)) abort (); } while (0)

static struct req *
find (struct check *k, uint64_t cookie)
{
  CHECK (cookie >= 1 && cookie <= k->nreqs);
  struct req *r = &k->reqs[cookie - 1];
  CHECK (!r->done);
  return r;
}

static bool
range_ok (const struct req *r)
{
  return r->offset <= FUZZ_DISK_SIZE && r->length <= FUZZ_DISK_SIZE - r->offset;
}

static bool
writes (const struct req *r)
{
  return r->type == NBD_CMD_WRITE || r->type == NBD_CMD_TRIM ||
         r->type == NBD_CMD_WRITE_ZEROES;
}

/* The end of request r: err, an NBD error or 0.  Only the errors the
 * spec names, never ENOMEM (memory waits, it does not fail), and every
 * write of any kind to the read-only export refused with EPERM. */
static void
answer (struct check *k, struct req *r, uint32_t err)
{
  switch (err) {
  case 0: case NBD_EPERM: case NBD_EIO: case NBD_EINVAL: case NBD_ENOSPC:
  case NBD_EOVERFLOW: case NBD_ENOTSUP: case NBD_ESHUTDOWN:
    break;
  default:
    abort ();
  }
  if (k->read_only && writes (r))
    CHECK (err == NBD_EPERM);
}

/* One structured chunk, its payload whole in p[0..len). */
static void
chunk (struct check *k, uint16_t flags, uint16_t type, struct req *r,
       const uint8_t *p, uint32_t len)
{
  uint64_t end = r->offset + r->length;

  switch (type) {
  case NBD_REPLY_TYPE_NONE:
    CHECK (len == 0 && (flags & NBD_REPLY_FLAG_DONE));
    answer (k, r, 0);
    break;
  case NBD_REPLY_TYPE_OFFSET_DATA: {   /* only its offset is kept */
    CHECK (r->type == NBD_CMD_READ && len > 8);
    uint64_t off = be_get64 (p);
    CHECK (off >= r->offset && off <= end && len - 8 <= end - off);
    break;
  }
  case NBD_REPLY_TYPE_OFFSET_HOLE: {
    CHECK (r->type == NBD_CMD_READ && len == 12);
    uint64_t off = be_get64 (p);
    uint32_t n = be_get32 (p + 8);
    CHECK (n > 0 && off >= r->offset && off <= end && n <= end - off);
    break;
  }
  case NBD_REPLY_TYPE_BLOCK_STATUS:
    CHECK (r->type == NBD_CMD_BLOCK_STATUS && k->base_allocation);
    CHECK (len >= 12 && (len - 4) % 8 == 0 && be_get32 (p) == 1);
    if (r->flags & NBD_CMD_FLAG_REQ_ONE)
      CHECK (len == 12 && be_get32 (p + 4) <= r->length);
    /* Consecutive extents from the offset, none past the end. */
    uint64_t sum = 0;
    for (uint32_t i = 4; i < len; i += 8) {
      CHECK (be_get32 (p + i) > 0 && (be_get32 (p + i + 4) & ~3u) == 0);
      sum += be_get32 (p + i);
    }
    CHECK (sum <= FUZZ_DISK_SIZE - r->offset);
    answer (k, r, 0);
    break;
  case NBD_REPLY_TYPE_ERROR:
  case NBD_REPLY_TYPE_ERROR_OFFSET:
    CHECK (len >= 6 && be_get32 (p) != 0);
    answer (k, r, be_get32 (p));
    uint16_t mlen = be_get16 (p + 4);
    if (type == NBD_REPLY_TYPE_ERROR)
      CHECK (len == 6u + mlen);
    else {
      CHECK (len == 14u + mlen && range_ok (r));
      uint64_t off = be_get64 (p + 6 + mlen);
      CHECK (off >= r->offset && off < end);
    }
    break;
  default:
    abort ();                          /* a chunk type we never send */
  }
  if (flags & NBD_REPLY_FLAG_DONE)
    r->done = true;
}

/* Parse what can be parsed of k->acc; returns the bytes consumed, 0 if
 * more are needed. */
static size_t
parse_one (struct check *k, const uint8_t *p, size_t n)
{
  if (!k->in_transmission) {
    if (!k->greeted) {
      if (n < 18)
        return 0;
      k->greeted = true;
      return 18;
    }
    if (k->options == k->before_name) {
      /* EXPORT_NAME's answer: size and flags, no zeroes. */
      if (n < 10)
        return 0;
      k->in_transmission = true;
      return 10;
    }
    if (n < 20)
      return 0;
    CHECK (be_get64 (p) == NBD_REP_MAGIC);
    uint32_t opt = be_get32 (p + 8), type = be_get32 (p + 12), len = be_get32 (p + 16);
    CHECK (len <= CHUNK_MAX);
    if (n < 20 + len)
      return 0;
    if (type == NBD_REP_ACK || (type & 0x80000000u)) {
      CHECK (type == NBD_REP_ACK || opt == NBD_OPT_SET_META_CONTEXT);
      if (opt == NBD_OPT_GO)
        k->in_transmission = true;
      else
        k->options++;
    }
    return 20 + len;
  }
  if (n < 4)
    return 0;
  uint32_t magic = be_get32 (p);
  if (magic == NBD_SIMPLE_REPLY_MAGIC) {
    if (n < NBD_SIMPLE_REPLY_SIZE)
      return 0;
    struct req *r = find (k, be_get64 (p + 8));
    CHECK (!(k->structured && r->type == NBD_CMD_READ));
    answer (k, r, be_get32 (p + 4));
    if (be_get32 (p + 4) == 0 && r->type == NBD_CMD_READ)
      k->skip = r->length;
    r->done = true;
    return NBD_SIMPLE_REPLY_SIZE;
  }
  CHECK (magic == NBD_STRUCTURED_REPLY_MAGIC && k->structured);
  if (n < NBD_CHUNK_HEADER_SIZE)
    return 0;
  uint16_t flags = be_get16 (p + 4), type = be_get16 (p + 6);
  struct req *r = find (k, be_get64 (p + 8));
  uint32_t len = be_get32 (p + 16);
  CHECK ((flags & ~NBD_REPLY_FLAG_DONE) == 0);
  if (type == NBD_REPLY_TYPE_OFFSET_DATA) {
    /* Check the header and offset now, skip the data. */
    if (n < NBD_CHUNK_HEADER_SIZE + 8)
      return 0;
    CHECK (len > 8);
    chunk (k, flags, type, r, p + NBD_CHUNK_HEADER_SIZE, 8 + (len - 8));
    k->skip = len - 8;
    return NBD_CHUNK_HEADER_SIZE + 8;
  }
  CHECK (len <= CHUNK_MAX);
  if (n < NBD_CHUNK_HEADER_SIZE + len)
    return 0;
  chunk (k, flags, type, r, p + NBD_CHUNK_HEADER_SIZE, len);
  return NBD_CHUNK_HEADER_SIZE + len;
}

static void
rx (void *opaque, const uint8_t *p, size_t n)
{
  struct check *k = opaque;

  while (n > 0) {
    if (k->skip > 0) {                 /* data: not kept */
      size_t m = k->skip < n ? (size_t) k->skip : n;
      k->skip -= m;
      p += m;
      n -= m;
      continue;
    }
    size_t m = n < CHUNK_MAX + 64 - k->nacc ? n : CHUNK_MAX + 64 - k->nacc;
    memcpy (k->acc + k->nacc, p, m);
    k->nacc += m;
    p += m;
    n -= m;
    while (k->nacc > 0) {
      size_t used;
      if (k->skip > 0)                 /* data that came with its header */
        used = k->skip < k->nacc ? (size_t) k->skip : k->nacc, k->skip -= used;
      else if ((used = parse_one (k, k->acc, k->nacc)) == 0)
        break;
      memmove (k->acc, k->acc + used, k->nacc - used);
      k->nacc -= used;
    }
  }
}

/* The handshake for mode m into pre; returns its length. */
static size_t
handshake (struct check *k, uint8_t m, uint8_t *pre)
{
  size_t n = 0;
  unsigned before = 0;
  const char *name = (m & MODE_READ_ONLY) ? "ro" : "";
  uint32_t nlen = (uint32_t) strlen (name);

  be_put32 (pre, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  n = 4;
#define OPT(o, l) (be_put64 (pre + n, NBD_IHAVEOPT), be_put32 (pre + n + 8, (o)), \
                   be_put32 (pre + n + 12, (l)), n += 16)
  if (m & MODE_STRUCTURED) {
    OPT (NBD_OPT_STRUCTURED_REPLY, 0);
    before++;
  }
  if (m & MODE_BASE_ALLOCATION) {
    static const char q[] = "base:allocation";
    OPT (NBD_OPT_SET_META_CONTEXT, 4 + nlen + 4 + 4 + (uint32_t) strlen (q));
    be_put32 (pre + n, nlen);
    memcpy (pre + n + 4, name, nlen);
    n += 4 + nlen;
    be_put32 (pre + n, 1);
    be_put32 (pre + n + 4, (uint32_t) strlen (q));
    memcpy (pre + n + 8, q, strlen (q));
    n += 8 + strlen (q);
    before++;
  }
  if (m & MODE_EXPORT_NAME) {
    OPT (NBD_OPT_EXPORT_NAME, nlen);
    memcpy (pre + n, name, nlen);
    n += nlen;
  }
  else {
    OPT (NBD_OPT_GO, 4 + nlen + 2);
    be_put32 (pre + n, nlen);
    memcpy (pre + n + 4, name, nlen);
    be_put16 (pre + n + 4 + nlen, 0);
    n += 4 + nlen + 2;
  }
#undef OPT
  k->structured = (m & MODE_STRUCTURED) != 0;
  k->base_allocation = k->structured && (m & MODE_BASE_ALLOCATION);
  k->read_only = (m & MODE_READ_ONLY) != 0;
  k->before_name = (m & MODE_EXPORT_NAME) ? before : UINT_MAX;
  return n;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct check k;
  static uint8_t acc[CHUNK_MAX + 64];
  uint8_t pre[128];

  if (size < 1)
    return 0;
  memset (&k, 0, sizeof k);
  k.acc = acc;
  size_t npre = handshake (&k, data[0], pre);
  data++;
  size--;

  /* Follow the requests as the server will read them, numbering the
   * cookies; count those read in full before anything ends reading. */
  uint8_t *in = malloc (size ? size : 1);
  if (in == NULL)
    return 0;
  memcpy (in, data, size);
  size_t pos = 0;
  bool reading = true;
  while (reading && size - pos >= NBD_REQUEST_SIZE && k.nreqs < MAX_REQS) {
    uint8_t *h = in + pos;
    if (be_get32 (h) != NBD_REQUEST_MAGIC)
      break;
    struct req r = { .flags = be_get16 (h + 4), .type = be_get16 (h + 6),
                     .offset = be_get64 (h + 16), .length = be_get32 (h + 24) };
    pos += NBD_REQUEST_SIZE;
    if (r.type == NBD_CMD_DISC)
      break;
    if (r.type == NBD_CMD_WRITE) {
      if (size - pos < r.length)
        break;                         /* cut off mid-payload: no reply owed */
      pos += r.length;
    }
    be_put64 (h + 8, k.nreqs + 1);
    k.reqs[k.nreqs++] = r;
  }
  /* Past MAX_REQS the cookies are left as sent: replies to them would
   * fail find (), so stop owing any by cutting the input there. */
  if (k.nreqs == MAX_REQS)
    size = pos;
  fuzz_nbd_converse (pre, npre, in, size, rx, &k);
  free (in);
  /* The server closed: every reply whole, every request answered. */
  CHECK (k.in_transmission && k.nacc == 0 && k.skip == 0);
  for (unsigned i = 0; i < k.nreqs; i++)
    CHECK (k.reqs[i].done);
  /* For a look at what a seed does: FUZZ_VERBOSE=1 ./fuzz-nbd-transmission FILE */
  if (getenv ("FUZZ_VERBOSE"))
    fprintf (stderr, "mode 0x%02x: %u requests answered, %s replies\n", data[-1],
             k.nreqs, k.structured ? "structured" : "simple");
  return 0;
}
