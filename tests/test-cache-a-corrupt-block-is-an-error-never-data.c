/* A compressed object damaged in memory: the block map never serves it
 * as data and never writes it back.  A read of it fails with EIO (an
 * unrecovered read error above), unless the block is clean and the
 * backing store has the same data; a write-back leaves it dirty and the
 * FLUSH fails; the damage is counted once per block; rewriting the whole
 * block heals it. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "internal.h"
#include "cache-fake-backing.h"

#define BS 4096u

/* Compressible, but not same-filled: lines of text that name the block. */
static void
text_block (uint8_t *p, unsigned seed)
{
  memset (p, ' ', BS);                  /* each line's tail, past its text */
  for (unsigned i = 0; i < BS; i += 64)
    snprintf ((char *) p + i, 64, "block %8u line %4u of some compressible text.....", seed, i / 64);
}

/* Overwrite block b's object with bytes that lz4 cannot decode: a run of
 * 0xff tokens asks for more literals than the object holds. */
static void
damage (struct store *s, uint64_t b)
{
  struct cache *k = (struct cache *) s;
  struct cmeta *m = &k->meta[b];

  assert_true ((m->flags & (CM_PRESENT | CM_SAME | CM_HUGE)) == CM_PRESENT);
  memset (zpool_map (k->zp, m->handle), 0xff, m->csize);
}

static int
wr (struct store *s, const void *p, size_t n, uint64_t off)
{
  struct iovec iov = { (void *) p, n };
  return store_pwrite (s, &iov, 1, off, 0);
}

static int
rd (struct store *s, void *p, size_t n, uint64_t off)
{
  struct iovec iov = { p, n };
  return store_pread (s, &iov, 1, off);
}

static uint64_t
corrupt_blocks (struct store *s)
{
  struct cache_stats st;
  assert_int_equal (cache_get_stats (s, &st), 0);
  return st.corrupt_blocks;
}

static void
in_memory_a_damaged_block_reads_as_eio_until_rewritten (void **state)
{
  struct cache_config cc = { .size = 1 << 20 };
  struct store *s = cache_create (&cc);
  uint8_t a[BS], b[BS], r[BS];

  assert_non_null (s);
  text_block (a, 1);
  text_block (b, 2);
  assert_int_equal (wr (s, a, BS, 0), 0);
  assert_int_equal (wr (s, b, BS, BS), 0);
  damage (s, 1);

  memset (r, 0x5a, BS);
  errno = 0;
  assert_int_equal (rd (s, r, BS, BS), -1);
  assert_int_equal (errno, EIO);
  assert_int_equal (rd (s, r, 512, BS + 1024), -1);   /* part of it too */
  assert_int_equal (errno, EIO);
  assert_int_equal (corrupt_blocks (s), 1);            /* once per block */
  /* A read across it fails as a whole; its neighbour is intact. */
  uint8_t two[2 * BS];
  assert_int_equal (rd (s, two, sizeof two, 0), -1);
  assert_int_equal (rd (s, r, BS, 0), 0);
  assert_memory_equal (r, a, BS);
  /* A partial write cannot merge with what is lost: EIO, nothing stored. */
  assert_int_equal (wr (s, a, 512, BS), -1);
  assert_int_equal (errno, EIO);
  /* A whole-block write replaces it. */
  assert_int_equal (wr (s, a, BS, BS), 0);
  assert_int_equal (rd (s, r, BS, BS), 0);
  assert_memory_equal (r, a, BS);
  assert_int_equal (corrupt_blocks (s), 1);
  store_close (s);
}

static void
a_damaged_dirty_block_stays_dirty_and_flush_fails (void **state)
{
  struct fake *f = fake_new (1 << 20);
  struct store *backing = &f->s;
  struct cache_config cc = { .backing = backing };
  struct store *s = cache_create (&cc);
  uint8_t a[BS], b[BS], c[BS], r[BS], zero[BS] = { 0 };
  struct cache_stats st;

  assert_non_null (s);
  text_block (a, 1);
  text_block (b, 2);
  text_block (c, 3);
  assert_int_equal (wr (s, a, BS, 0), 0);
  assert_int_equal (wr (s, b, BS, BS), 0);
  assert_int_equal (wr (s, c, BS, 2 * BS), 0);
  damage (s, 1);

  errno = 0;
  assert_int_equal (store_flush (s), -1);
  assert_int_equal (errno, EIO);
  /* Its neighbours were written back; it was not, and stays dirty. */
  assert_int_equal (rd (backing, r, BS, 0), 0);
  assert_memory_equal (r, a, BS);
  assert_int_equal (rd (backing, r, BS, 2 * BS), 0);
  assert_memory_equal (r, c, BS);
  assert_int_equal (rd (backing, r, BS, BS), 0);
  assert_memory_equal (r, zero, BS);
  cache_get_stats (s, &st);
  assert_int_equal (st.dirty_blocks, 1);
  assert_int_equal (st.corrupt_blocks, 1);
  /* Reading it is an error, not the backing store's older data. */
  assert_int_equal (rd (s, r, BS, BS), -1);
  assert_int_equal (errno, EIO);
  assert_int_equal (store_flush (s), -1);               /* still */
  assert_int_equal (corrupt_blocks (s), 1);
  /* Rewritten, it flushes. */
  assert_int_equal (wr (s, b, BS, BS), 0);
  assert_int_equal (store_flush (s), 0);
  assert_int_equal (rd (backing, r, BS, BS), 0);
  assert_memory_equal (r, b, BS);
  store_close (s);
  fake_free (f);
}

static void
a_damaged_clean_block_is_read_again_from_the_backing_store (void **state)
{
  struct fake *f = fake_new (1 << 20);
  struct store *backing = &f->s;
  struct cache_config cc = { .backing = backing };
  struct store *s = cache_create (&cc);
  uint8_t a[BS], r[BS];
  struct cache_stats st;

  assert_non_null (s);
  text_block (a, 7);
  assert_int_equal (wr (s, a, BS, 3 * BS), 0);
  assert_int_equal (store_flush (s), 0);               /* clean now */
  damage (s, 3);
  assert_int_equal (rd (s, r, BS, 3 * BS), 0);
  assert_memory_equal (r, a, BS);
  cache_get_stats (s, &st);
  assert_int_equal (st.corrupt_blocks, 1);
  assert_int_equal (st.misses, 1);                     /* read from the store */
  assert_int_equal (rd (s, r, BS, 3 * BS), 0);         /* and cached again */
  assert_memory_equal (r, a, BS);
  assert_int_equal (store_flush (s), 0);
  store_close (s);
  fake_free (f);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (in_memory_a_damaged_block_reads_as_eio_until_rewritten),
    cmocka_unit_test (a_damaged_dirty_block_stays_dirty_and_flush_fails),
    cmocka_unit_test (a_damaged_clean_block_is_read_again_from_the_backing_store),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
