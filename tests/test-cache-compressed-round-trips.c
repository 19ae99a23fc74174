/* The compressed block map as the in-memory disk: data of every kind
 * round trips at every block size, zero and same-filled blocks cost no
 * memory, incompressible data is stored raw, size classes keep memory
 * close to the compressed size, and compaction gives memory back. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
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
  uint8_t blk[4096], r[4096];
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
  assert_int_equal (store_trim (s, 0, 64 * 4096), 0);
  random_bytes (blk, sizeof blk, 12345);
  assert_int_equal (store_pwrite (s, &iov, 1, i * 4096, 0), 0);
  rd (s, r, sizeof r, i * 4096);
  assert_memory_equal (r, blk, sizeof r);
  store_close (s);
}

static void
extents_report_holes_and_data (void **state)
{
  struct store *s = memdisk (1 * MiB, 4096, 0);
  uint8_t blk[8192];
  uint64_t len;
  bool alloc;

  text_bytes (blk, sizeof blk, 1);
  wr (s, blk, sizeof blk, 16384);
  assert_int_equal (store_extent (s, 0, MiB, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 16384);
  assert_int_equal (store_extent (s, 16384, MiB - 16384, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, 8192);
  assert_true ((s->caps & STORE_CAP_MEMORY) && (s->caps & STORE_CAP_FAST_ZERO));
  store_close (s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (every_kind_of_block_round_trips_at_every_block_size),
    cmocka_unit_test (zero_and_same_blocks_allocate_no_memory),
    cmocka_unit_test (sub_block_writes_at_odd_offsets_keep_their_neighbours),
    cmocka_unit_test (reads_and_writes_through_many_small_segments),
    cmocka_unit_test (size_classes_keep_memory_near_the_compressed_size),
    cmocka_unit_test (compaction_gives_back_the_memory_of_sparse_chunks),
    cmocka_unit_test (mem_limit_full_gives_enospc_and_trim_makes_room),
    cmocka_unit_test (extents_report_holes_and_data),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
