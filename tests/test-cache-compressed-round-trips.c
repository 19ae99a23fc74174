/* The compressed block map as the in-memory disk: data of every kind
 * round trips at every block size, writes at any offset through any
 * vector read back exactly, holes read as zeroes, zero and same-filled
 * blocks cost no memory, trim and zero give blocks back, extents tell
 * holes from data, incompressible data is stored raw, size classes keep
 * memory close to the compressed size, compaction gives memory back, the
 * memory limit gives ENOSPC, and threads sharing blocks lose no write. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"

#define MiB (1024u * 1024)

static void
random_bytes (uint8_t *p, size_t n, unsigned seed)
{
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    p[i] = (uint8_t) x;
  }
}

/* Text-like data: words from a small vocabulary. */
static void
text_bytes (uint8_t *p, size_t n, unsigned seed)
{
  static const char *const words[] = { "block ", "device ", "cache ", "sense ",
    "vector ", "the ", "of ", "write ", "read ", "flush\n" };
  size_t i = 0;
  while (i < n) {
    const char *w = words[(seed = seed * 1103515245 + 12345) >> 16 & 7];
    for (size_t j = 0; w[j] && i < n; j++)
      p[i++] = (uint8_t) w[j];
  }
}

static struct store *
memdisk (uint64_t size, uint32_t bs, uint64_t limit)
{
  struct cache_config cc = { .size = size, .block_size = bs, .mem_limit = limit };
  struct store *s = cache_create (&cc);
  assert_non_null (s);
  return s;
}

static void
wr (struct store *s, const void *p, size_t n, uint64_t off)
{
  struct iovec iov = { (void *) p, n };
  assert_int_equal (store_pwrite (s, &iov, 1, off, 0), 0);
}

static void
rd (struct store *s, void *p, size_t n, uint64_t off)
{
  struct iovec iov = { p, n };
  assert_int_equal (store_pread (s, &iov, 1, off), 0);
}

/* Never zero, and no block of it is same-filled. */
static void
fill (uint8_t *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t) ((i * 131 + seed * 17) % 251 + 1);
}

/* Write/read through an iovec array cut at odd places, so segment ends
 * fall inside blocks. */
static int
write_split (struct store *s, const void *buf, size_t len, uint64_t off)
{
  size_t cut[5] = { 0, len / 7, len / 7 + len / 3, len - len / 11, len };
  struct iovec iov[4];

  for (int i = 0; i < 4; i++)
    iov[i] = (struct iovec) { (uint8_t *) buf + cut[i], cut[i + 1] - cut[i] };
  return store_pwrite (s, iov, 4, off, 0);
}

static int
read_split (struct store *s, void *buf, size_t len, uint64_t off)
{
  size_t a = len / 5, b = len / 2 + 1 < len ? len / 2 + 1 : len;
  struct iovec iov[3] = {
    { buf, a }, { (uint8_t *) buf + a, b - a }, { (uint8_t *) buf + b, len - b },
  };

  return store_pread (s, iov, 3, off);
}

static struct cache_stats
stats (struct store *s)
{
  struct cache_stats st;
  assert_int_equal (cache_get_stats (s, &st), 0);
  return st;
}

static void
every_kind_of_block_round_trips_at_every_block_size (void **state)
{
  for (uint32_t bs = 4096; bs <= 65536; bs *= 2) {
    struct store *s = memdisk (16 * MiB, bs, 0);
    uint8_t *w = malloc (4 * bs), *r = malloc (4 * bs);
    struct cache_stats st;

    random_bytes (w, bs, bs);                         /* block 0: random */
    text_bytes (w + bs, bs, bs);                      /* block 1: compressible */
    memset (w + 2 * bs, 0, bs);                       /* block 2: zero */
    for (uint32_t i = 0; i < bs; i += 4)              /* block 3: same-filled */
      memcpy (w + 3 * bs + i, "\xde\xad\xbe\xef", 4);
    wr (s, w, 4 * bs, 8 * (uint64_t) bs);
    rd (s, r, 4 * bs, 8 * (uint64_t) bs);
    assert_memory_equal (r, w, 4 * bs);
    assert_int_equal (cache_get_stats (s, &st), 0);
    assert_int_equal (st.block_size, bs);
    assert_int_equal (st.huge_blocks, 1);            /* random data stored raw */
    assert_int_equal (st.same_blocks, 1);            /* the 0xdeadbeef block */
    assert_int_equal (st.orig_bytes, 3 * (uint64_t) bs);   /* the zero block is a hole */
    /* raw block + compressed text block, the latter well under half. */
    assert_true (st.compr_bytes > bs && st.compr_bytes < bs + bs / 2);
    /* Unwritten space reads zero. */
    rd (s, r, bs, 0);
    for (uint32_t i = 0; i < bs; i++)
      assert_int_equal (r[i], 0);
    free (w);
    free (r);
    store_close (s);
  }
}

static void
writes_at_odd_offsets_and_lengths_read_back_exactly (void **state)
{
  const size_t size = 1 * MiB;
  struct store *s = memdisk (size, 4096, 0);
  uint8_t *ref = calloc (1, size), *buf = malloc (size);
  unsigned seed = 42;

  assert_int_equal (s->size, size);
  assert_int_equal (s->caps & STORE_CAP_PERSISTENT, 0);
  assert_int_equal (s->caps & (STORE_CAP_TRIM | STORE_CAP_FAST_ZERO | STORE_CAP_EXTENTS),
                    STORE_CAP_TRIM | STORE_CAP_FAST_ZERO | STORE_CAP_EXTENTS);
  for (int i = 0; i < 300; i++) {
    size_t len = 1 + (size_t) rand_r (&seed) % 20000;
    uint64_t off = (uint64_t) rand_r (&seed) % (size - len);

    fill (buf, len, (unsigned) i);
    assert_int_equal (write_split (s, buf, len, off), 0);
    memcpy (ref + off, buf, len);
    /* A read straddling the write, also split oddly. */
    uint64_t roff = off > 777 ? off - 777 : 0;
    size_t rlen = len + 1500 < size - roff ? len + 1500 : size - roff;
    assert_int_equal (read_split (s, buf, rlen, roff), 0);
    assert_memory_equal (buf, ref + roff, rlen);
  }
  memset (buf, 0xee, size);
  rd (s, buf, size, 0);
  assert_memory_equal (buf, ref, size);

  /* 512-byte aligned but not block aligned: the SCSI core's case. */
  fill (buf, 3 * 512, 99);
  wr (s, buf, 3 * 512, 7 * 512);
  memcpy (ref + 7 * 512, buf, 3 * 512);
  rd (s, buf, 16 * 512, 0);
  assert_memory_equal (buf, ref, 16 * 512);
  free (ref);
  free (buf);
  store_close (s);
}

static void
holes_read_as_zeroes_and_writes_of_zeroes_store_nothing (void **state)
{
  struct store *s = memdisk (64 * MiB, 4096, 0);
  uint8_t *buf = malloc (65536), *zero = calloc (1, 65536);
  uint64_t mem = stats (s).mem_used;

  memset (buf, 0xff, 65536);
  rd (s, buf, 65536, 40 * MiB + 123);
  assert_memory_equal (buf, zero, 65536);

  /* Zeroes written into holes, aligned or not, store nothing. */
  assert_int_equal (write_split (s, zero, 65536, 0), 0);
  wr (s, zero, 1000, 5000);
  assert_int_equal (stats (s).orig_bytes, 0);
  assert_int_equal (stats (s).mem_used, mem);

  /* One non-zero byte stores its block. */
  buf[0] = 1;
  wr (s, buf, 1, 5000);
  assert_int_equal (stats (s).orig_bytes, 4096);
  rd (s, buf, 3 * 4096, 0);
  for (size_t i = 0; i < 3 * 4096; i++)
    assert_int_equal (buf[i], i == 5000 ? 1 : 0);

  /* Zeroes over part of it keep the block; a write that leaves it all
   * zero, whole or not, frees it. */
  wr (s, zero, 512, 4096);
  assert_int_equal (stats (s).orig_bytes, 4096);
  wr (s, zero, 1, 5000);
  assert_int_equal (stats (s).orig_bytes, 0);
  buf[0] = 2;
  wr (s, buf, 1, 6000);
  wr (s, zero, 4096, 4096);
  assert_int_equal (stats (s).orig_bytes, 0);
  rd (s, buf, 3 * 4096, 0);
  assert_memory_equal (buf, zero, 3 * 4096);
  store_close (s);

  /* The last block of a disk whose size is not a block multiple. */
  s = memdisk (10 * 4096 + 1024, 4096, 0);
  fill (buf, 1024, 3);
  wr (s, buf, 1024, 10 * 4096);
  memset (buf + 2048, 0, 1024);
  rd (s, buf + 2048, 1024, 10 * 4096);
  assert_memory_equal (buf + 2048, buf, 1024);
  store_close (s);

  errno = 0;
  assert_null (cache_create (&(struct cache_config) { .size = 0 }));
  assert_int_equal (errno, EINVAL);
  free (buf);
  free (zero);
}

/* Random bytes: a block of them does not compress. */
static void
noise (uint8_t *p, size_t n, uint32_t seed)
{
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t) (seed >> 16);
  }
}

static void
only_a_map_whose_limit_holds_it_all_promises_room_under_its_data (void **state)
{
  const size_t bs = 4096, n = 64;
  uint8_t *b = malloc (bs);
  uint64_t ext;
  bool alloc;

  /* Overcommitted: says so; a zero without MAY_TRIM leaves a hole. */
  struct store *over = memdisk (n * bs, bs, n * bs / 2);
  assert_true (over->caps & STORE_CAP_OVERCOMMIT);
  fill (b, bs, 3);
  wr (over, b, bs, 0);
  assert_int_equal (store_zero (over, 0, bs, 0), 0);
  assert_int_equal (store_extent (over, 0, bs, &ext, &alloc), 0);
  assert_false (alloc);
  store_close (over);

  /* A limit of the disk's size: every block written raw fills it; then
   * any block that held compressible data or zeroes, rewritten with
   * noise, still fits although the memory is all used. */
  struct store *fits = memdisk (n * bs, bs, n * bs);
  assert_false (fits->caps & STORE_CAP_OVERCOMMIT);
  for (size_t i = 0; i < n; i++) {
    if (i % 2)
      fill (b, bs, (uint32_t) i);
    else
      noise (b, bs, (uint32_t) i);
    struct iovec iov = { b, bs };
    if (store_pwrite (fits, &iov, 1, i * bs, 0) == -1)
      assert_int_equal (errno, ENOSPC);   /* a hole: allowed to fail */
  }
  assert_int_equal (store_zero (fits, 1 * bs, bs, 0), 0);   /* NO_HOLE */
  for (size_t i = 1; i < n; i += 2) {
    assert_int_equal (store_extent (fits, i * bs, bs, &ext, &alloc), 0);
    if (!alloc)
      continue;
    noise (b, bs, (uint32_t) (1000 + i));
    struct iovec iov = { b, bs };
    assert_int_equal (store_pwrite (fits, &iov, 1, i * bs, 0), 0);
  }
  store_close (fits);
  free (b);
}

static void
trim_and_zero_free_whole_blocks_and_zero_partial_ones (void **state)
{
  const size_t bs = 4096, size = 256 * bs;
  struct store *s = memdisk (size, bs, 0);
  uint8_t *ref = malloc (size), *buf = malloc (size);

  fill (ref, size, 7);
  wr (s, ref, size, 0);
  assert_int_equal (stats (s).orig_bytes, size);

  /* 512-aligned, not block aligned: blocks 4..9 go, 3 and 10 are partial. */
  assert_int_equal (store_trim (s, 3 * bs + 512, 7 * bs), 0);
  memset (ref + 3 * bs + 512, 0, 7 * bs);
  assert_int_equal (stats (s).orig_bytes, size - 6 * bs);

  /* zero with MAY_TRIM frees whole blocks; without it (FAST_ZERO or not)
   * it keeps them allocated, as zero-filled blocks that take no memory:
   * the disk has no limit, so it promises room to rewrite them. */
  uint64_t compr = stats (s).compr_bytes;
  assert_int_equal (store_zero (s, 100 * bs, 8 * bs, 0), 0);
  assert_int_equal (store_zero (s, 120 * bs + 1, 2 * bs, STORE_MAY_TRIM), 0);
  assert_int_equal (store_zero (s, 130 * bs, bs, STORE_FAST_ZERO), 0);
  memset (ref + 100 * bs, 0, 8 * bs);
  memset (ref + 120 * bs + 1, 0, 2 * bs);
  memset (ref + 130 * bs, 0, bs);
  assert_int_equal (stats (s).orig_bytes, size - (6 + 1) * bs);
  assert_true (stats (s).compr_bytes < compr);
  assert_int_equal (stats (s).same_blocks, 8 + 1);
  uint64_t ext;
  bool alloc;
  assert_int_equal (store_extent (s, 100 * bs, 8 * bs, &ext, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (ext, 8 * bs);
  assert_int_equal (store_extent (s, 121 * bs, bs, &ext, &alloc), 0);
  assert_false (alloc);
  rd (s, buf, size, 0);
  assert_memory_equal (buf, ref, size);

  /* A partial trim that leaves a block all zero frees it too. */
  assert_int_equal (store_trim (s, 3 * bs, 512), 0);
  assert_int_equal (stats (s).orig_bytes, size - (6 + 1 + 1) * bs);

  /* Trim of everything, including never-written space. */
  assert_int_equal (store_trim (s, 0, size), 0);
  assert_int_equal (stats (s).orig_bytes, 0);
  assert_int_equal (stats (s).compr_bytes, 0);
  memset (ref, 0, size);
  rd (s, buf, size, 0);
  assert_memory_equal (buf, ref, size);
  assert_int_equal (store_flush (s), 0);
  free (ref);
  free (buf);
  store_close (s);
}

static void
zero_and_same_blocks_allocate_no_memory (void **state)
{
  struct store *s = memdisk (64 * MiB, 4096, 0);
  uint8_t *buf = malloc (8 * MiB);
  struct cache_stats before, after;

  cache_get_stats (s, &before);
  memset (buf, 0, 8 * MiB);
  wr (s, buf, 8 * MiB, 0);
  for (size_t i = 0; i < 8 * MiB; i += 8)
    memcpy (buf + i, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  wr (s, buf, 8 * MiB, 16 * MiB);
  cache_get_stats (s, &after);
  assert_int_equal (after.mem_used, before.mem_used);
  assert_int_equal (after.same_blocks, 8 * MiB / 4096);
  assert_int_equal (after.compr_bytes, 0);
  free (buf);
  store_close (s);
}

static void
sub_block_writes_at_odd_offsets_keep_their_neighbours (void **state)
{
  struct store *s = memdisk (1 * MiB, 4096, 0);
  uint8_t ref[65536], w[1000], r[65536];

  text_bytes (ref, sizeof ref, 3);
  wr (s, ref, sizeof ref, 0);
  random_bytes (w, sizeof w, 4);
  wr (s, w, sizeof w, 512 + 3);
  memcpy (ref + 512 + 3, w, sizeof w);
  wr (s, w, 7, 4096 * 5 - 3);                        /* across a block boundary */
  memcpy (ref + 4096 * 5 - 3, w, 7);
  rd (s, r, sizeof r, 0);
  assert_memory_equal (r, ref, sizeof r);
  rd (s, r, 11, 4095);
  assert_memory_equal (r, ref + 4095, 11);
  store_close (s);
}

static void
reads_and_writes_through_many_small_segments (void **state)
{
  struct store *s = memdisk (1 * MiB, 16384, 0);
  uint8_t w[65536], r[65536];
  struct iovec iov[40];
  int n = 0;

  text_bytes (w, sizeof w, 8);
  /* Segments of 1000..2600 bytes: block boundaries fall inside them. */
  for (size_t off = 0; off < sizeof w; n++) {
    size_t len = 1000 + (size_t) n * 37 % 1600;
    if (off + len > sizeof w) len = sizeof w - off;
    iov[n] = (struct iovec) { w + off, len };
    off += len;
  }
  assert_int_equal (store_pwrite (s, iov, n, 16384, 0), 0);
  memset (r, 0, sizeof r);
  for (int i = 0; i < n; i++)
    iov[i].iov_base = r + ((uint8_t *) iov[i].iov_base - w);
  assert_int_equal (store_pread (s, iov, n, 16384), 0);
  assert_memory_equal (r, w, sizeof w);
  store_close (s);
}

static void
size_classes_keep_memory_near_the_compressed_size (void **state)
{
  const size_t n = 16384;                            /* 64 MiB of 4 KiB blocks */
  struct store *s = memdisk (n * 4096, 4096, 0);
  uint8_t blk[4096];
  struct cache_stats st;

  for (size_t i = 0; i < n; i++) {
    /* Mixed compressibility: a random head of varying length, text after. */
    text_bytes (blk, sizeof blk, (unsigned) i);
    random_bytes (blk, (i * 97) % 2800, (unsigned) i);
    wr (s, blk, sizeof blk, i * 4096);
  }
  cache_get_stats (s, &st);
  uint64_t table = n * 16;
  double overhead = (double) (st.mem_used - table) / (double) st.compr_bytes;
  printf ("orig %llu compressed %llu memory %llu (table %llu): overhead %.3f\n",
          (unsigned long long) st.orig_bytes, (unsigned long long) st.compr_bytes,
          (unsigned long long) st.mem_used, (unsigned long long) table, overhead);
  /* Slots waste under 16 bytes each and chunk tails little: within 10%
   * of the compressed bytes, plus at most one part-used chunk per class
   * (193 classes, chunks of at most 32 KiB for 4 KiB blocks). */
  assert_true (st.mem_used - table <= st.compr_bytes * 1.10 + 193 * 32768);
  store_close (s);
}

static void
compaction_gives_back_the_memory_of_sparse_chunks (void **state)
{
  const size_t n = 8192;
  struct store *s = memdisk (n * 4096, 4096, 0);
  uint8_t blk[4096], r[4096];
  struct cache_stats full, sparse, compacted;

  for (size_t i = 0; i < n; i++) {
    text_bytes (blk, sizeof blk, (unsigned) i);
    random_bytes (blk, 1500, (unsigned) i);          /* all in a few classes */
    wr (s, blk, sizeof blk, i * 4096);
  }
  cache_get_stats (s, &full);
  /* Trim 7 blocks of every 8: every chunk keeps a few objects. */
  for (size_t i = 0; i < n; i++)
    if (i % 8 != 0)
      assert_int_equal (store_trim (s, i * 4096, 4096), 0);
  cache_get_stats (s, &sparse);
  uint64_t released = cache_compact (s);
  cache_get_stats (s, &compacted);
  printf ("memory full %llu, after trims %llu, after compaction %llu (%llu released, %llu moved)\n",
          (unsigned long long) full.mem_used, (unsigned long long) sparse.mem_used,
          (unsigned long long) compacted.mem_used, (unsigned long long) released,
          (unsigned long long) compacted.compactions);
  assert_true (compacted.compactions > 0);
  /* At least half of what the sparse chunks held comes back. */
  assert_true (compacted.mem_used < sparse.mem_used - (sparse.mem_used - full.mem_used / 8) / 2);
  for (size_t i = 0; i < n; i += 8) {
    text_bytes (blk, sizeof blk, (unsigned) i);
    random_bytes (blk, 1500, (unsigned) i);
    rd (s, r, sizeof r, i * 4096);
    assert_memory_equal (r, blk, sizeof r);
  }
  store_close (s);
}

static void
mem_limit_full_gives_enospc_and_trim_makes_room (void **state)
{
  struct store *s = memdisk (64 * MiB, 4096, 2 * MiB);
  uint8_t blk[4096], r[4096], zero[4096] = { 0 };
  struct iovec iov = { blk, sizeof blk };
  size_t i;

  for (i = 0; i < 64 * MiB / 4096; i++) {
    random_bytes (blk, sizeof blk, (unsigned) i);
    if (store_pwrite (s, &iov, 1, i * 4096, 0) == -1)
      break;
  }
  assert_int_equal (errno, ENOSPC);
  assert_true (i > 100 && i < 1024);
  /* The failed write left block 0's neighbour data and block i intact. */
  random_bytes (blk, sizeof blk, 0);
  rd (s, r, sizeof r, 0);
  assert_memory_equal (r, blk, sizeof r);
  /* Full, zeroes still go into holes: they take no memory. */
  wr (s, zero, sizeof zero, (i + 10) * 4096);
  assert_int_equal (store_zero (s, (i + 20) * 4096, 8 * 4096, 0), 0);
  assert_int_equal (store_trim (s, 0, 64 * 4096), 0);
  random_bytes (blk, sizeof blk, 12345);
  assert_int_equal (store_pwrite (s, &iov, 1, i * 4096, 0), 0);
  rd (s, r, sizeof r, i * 4096);
  assert_memory_equal (r, blk, sizeof r);

  /* Full again; zeroing gives room back as trimming does. */
  size_t j;
  for (j = i + 1; j < 64 * MiB / 4096; j++) {
    random_bytes (blk, sizeof blk, (unsigned) j);
    if (store_pwrite (s, &iov, 1, j * 4096, 0) == -1)
      break;
  }
  assert_int_equal (errno, ENOSPC);
  assert_int_equal (store_zero (s, 64 * 4096, 64 * 4096, 0), 0);
  assert_int_equal (store_pwrite (s, &iov, 1, j * 4096, 0), 0);
  rd (s, r, sizeof r, j * 4096);
  assert_memory_equal (r, blk, sizeof r);
  store_close (s);
}

static void
extents_report_holes_and_data_clipped_to_the_range (void **state)
{
  const uint64_t size = 64 * MiB, pg = 4096;
  struct store *s = memdisk (size, 4096, 0);
  uint8_t blk[4096];
  uint64_t len;
  bool alloc;

  assert_true ((s->caps & STORE_CAP_MEMORY) && (s->caps & STORE_CAP_FAST_ZERO));
  text_bytes (blk, sizeof blk, 1);
  wr (s, blk, pg, 2 * pg);
  wr (s, blk, pg, 3 * pg);
  wr (s, blk, 10, 10 * pg + 5);
  wr (s, blk, pg, 40 * MiB);

  assert_int_equal (store_extent (s, 0, size, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 2 * pg);
  assert_int_equal (store_extent (s, 2 * pg, size - 2 * pg, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, 2 * pg);
  /* From the middle of a data block. */
  assert_int_equal (store_extent (s, 2 * pg + 1000, 100000, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, 2 * pg - 1000);
  /* Clipped to the asked length. */
  assert_int_equal (store_extent (s, 2 * pg + 512, 512, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, 512);
  assert_int_equal (store_extent (s, 4 * pg + 7, 3 * pg, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 3 * pg);
  assert_int_equal (store_extent (s, 4 * pg, size - 4 * pg, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 6 * pg);
  /* A block holding a few bytes is data. */
  assert_int_equal (store_extent (s, 10 * pg, size - 10 * pg, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, pg);
  assert_int_equal (store_extent (s, 11 * pg, size - 11 * pg, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 40 * MiB - 11 * pg);
  assert_int_equal (store_extent (s, 40 * MiB, size - 40 * MiB, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, pg);
  /* The tail: a hole to the end. */
  assert_int_equal (store_extent (s, 40 * MiB + pg, size - 40 * MiB - pg, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, size - 40 * MiB - pg);

  /* After a trim, the data is a hole. */
  assert_int_equal (store_trim (s, 2 * pg, 2 * pg), 0);
  assert_int_equal (store_extent (s, 0, size, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 10 * pg);
  store_close (s);
}

/* Four threads own interleaved 512-byte sectors, so every block is shared
 * by all of them: each writes, reads back and sometimes trims its own
 * sectors, every write a read-modify-write of a block the others write. */
#define NTHREADS 4
#define SECTOR 512u
#define AREA (64 * 4096u)

struct worker {
  struct store *s;
  unsigned id;
  int errors;
};

static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  uint8_t b[SECTOR], got[SECTOR], zero[SECTOR] = { 0 };
  struct iovec wv = { b, SECTOR }, rv = { got, SECTOR };

  for (unsigned iter = 0; iter < 50; iter++) {
    for (unsigned sec = w->id; sec < AREA / SECTOR; sec += NTHREADS) {
      uint64_t off = (uint64_t) sec * SECTOR;

      fill (b, SECTOR, sec * 7 + iter);
      if (store_pwrite (w->s, &wv, 1, off, 0) != 0)
        w->errors++;
      if (store_pread (w->s, &rv, 1, off) != 0 || memcmp (got, b, SECTOR) != 0)
        w->errors++;
      if ((sec + iter) % 5 == 0) {
        if (store_trim (w->s, off, SECTOR) != 0)
          w->errors++;
        if (store_pread (w->s, &rv, 1, off) != 0 || memcmp (got, zero, SECTOR) != 0)
          w->errors++;
        if (store_pwrite (w->s, &wv, 1, off, 0) != 0)
          w->errors++;
      }
    }
  }
  return NULL;
}

static void
threads_writing_neighbouring_sectors_of_shared_blocks_lose_nothing (void **state)
{
  struct store *s = memdisk (AREA, 4096, 0);
  struct worker w[NTHREADS];
  pthread_t t[NTHREADS];
  uint8_t *buf = malloc (AREA), b[SECTOR];

  for (unsigned i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker) { .s = s, .id = i };
    assert_int_equal (pthread_create (&t[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join (t[i], NULL);
    assert_int_equal (w[i].errors, 0);
  }
  rd (s, buf, AREA, 0);
  for (unsigned sec = 0; sec < AREA / SECTOR; sec++) {
    fill (b, SECTOR, sec * 7 + 49);
    assert_memory_equal (buf + (size_t) sec * SECTOR, b, SECTOR);
  }
  assert_int_equal (stats (s).orig_bytes, AREA);
  free (buf);
  store_close (s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (every_kind_of_block_round_trips_at_every_block_size),
    cmocka_unit_test (writes_at_odd_offsets_and_lengths_read_back_exactly),
    cmocka_unit_test (holes_read_as_zeroes_and_writes_of_zeroes_store_nothing),
    cmocka_unit_test (trim_and_zero_free_whole_blocks_and_zero_partial_ones),
    cmocka_unit_test (only_a_map_whose_limit_holds_it_all_promises_room_under_its_data),
    cmocka_unit_test (zero_and_same_blocks_allocate_no_memory),
    cmocka_unit_test (sub_block_writes_at_odd_offsets_keep_their_neighbours),
    cmocka_unit_test (reads_and_writes_through_many_small_segments),
    cmocka_unit_test (size_classes_keep_memory_near_the_compressed_size),
    cmocka_unit_test (compaction_gives_back_the_memory_of_sparse_chunks),
    cmocka_unit_test (mem_limit_full_gives_enospc_and_trim_makes_room),
    cmocka_unit_test (extents_report_holes_and_data_clipped_to_the_range),
    cmocka_unit_test (threads_writing_neighbouring_sectors_of_shared_blocks_lose_nothing),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
