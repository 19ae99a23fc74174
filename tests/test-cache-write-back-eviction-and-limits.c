/* The block map as a write-back cache in front of a backing store: what
 * reaches the backing store, when, in what order, and that nothing is
 * lost when the cache is full, evicting, or the store fails. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "cache-fake-backing.h"

static struct store *
cache_on (struct fake *f, uint64_t limit, enum cache_mode mode)
{
  struct cache_config cc = { .backing = &f->s, .mem_limit = limit, .mode = mode };
  struct store *s = cache_create (&cc);
  assert_non_null (s);
  return s;
}

static void
random_block (uint8_t *p, size_t n, unsigned seed)
{
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    p[i] = (uint8_t) x;
  }
}

static int
wr (struct store *s, const void *p, size_t n, uint64_t off, unsigned flags)
{
  struct iovec iov = { (void *) p, n };
  return store_pwrite (s, &iov, 1, off, flags);
}

static void
rd (struct store *s, void *p, size_t n, uint64_t off)
{
  struct iovec iov = { p, n };
  assert_int_equal (store_pread (s, &iov, 1, off), 0);
}

static void
write_back_is_in_lba_order_with_adjacent_blocks_coalesced (void **state)
{
  struct fake *f = fake_new (1 << 20);
  struct store *s = cache_on (f, 0, CACHE_MODE_WRITEBACK);
  uint8_t b[4096];
  struct cache_stats st;

  for (int i = 0, order[] = { 7, 3, 5, 4, 6 }; i < 5; i++) {
    random_block (b, sizeof b, (unsigned) order[i]);
    assert_int_equal (wr (s, b, sizeof b, (uint64_t) order[i] * 4096, 0), 0);
  }
  cache_get_stats (s, &st);
  assert_int_equal (st.dirty_blocks, 5);
  assert_int_equal (f->nwrites, 0);                 /* nothing yet: write-back */
  assert_int_equal (store_flush (s), 0);
  assert_int_equal (f->nwrites, 1);                 /* one write for blocks 3..7 */
  assert_int_equal (f->woff[0], 3 * 4096);
  assert_int_equal (f->wlen[0], 5 * 4096);
  assert_int_equal (f->flushes, 1);
  cache_get_stats (s, &st);
  assert_int_equal (st.dirty_blocks, 0);
  assert_int_equal (st.written_back, 5);
  for (int i = 3; i <= 7; i++) {
    random_block (b, sizeof b, (unsigned) i);
    assert_memory_equal (f->data + i * 4096, b, sizeof b);
  }
  store_close (s);
  fake_free (f);
}

static void
fua_and_writethrough_reach_the_store_before_returning (void **state)
{
  struct fake *f = fake_new (1 << 20);
  struct store *s = cache_on (f, 0, CACHE_MODE_WRITEBACK);
  uint8_t b[4096], r[4096];

  random_block (b, sizeof b, 1);
  assert_int_equal (wr (s, b, sizeof b, 8192, STORE_FUA), 0);
  assert_int_equal (f->fua, 1);
  assert_memory_equal (f->data + 8192, b, sizeof b);
  rd (s, r, sizeof r, 8192);                          /* and the cache has it, clean */
  assert_memory_equal (r, b, sizeof b);
  store_close (s);

  struct fake *g = fake_new (1 << 20);
  s = cache_on (g, 0, CACHE_MODE_WRITETHROUGH);
  assert_int_equal (wr (s, b, sizeof b, 0, 0), 0);
  assert_memory_equal (g->data, b, sizeof b);
  assert_int_equal (g->fua, 1);                       /* durable: no volatile cache */
  struct cache_stats st;
  cache_get_stats (s, &st);
  assert_int_equal (st.dirty_blocks, 0);
  assert_int_equal (st.mode, CACHE_MODE_WRITETHROUGH);
  store_close (s);
  fake_free (f);
  fake_free (g);
}

static void
reads_miss_then_hit_and_clean_blocks_are_evicted_least_recent_first (void **state)
{
  struct fake *f = fake_new (64 << 20);
  struct store *s = cache_on (f, 1 << 20, CACHE_MODE_WRITEBACK);   /* 1 MiB of memory */
  uint8_t b[4096], r[4096];
  struct cache_stats st;

  for (int i = 0; i < 4096; i++) {                  /* 16 MiB of random data behind */
    random_block (b, sizeof b, (unsigned) i);
    memcpy (f->data + (size_t) i * 4096, b, sizeof b);
  }
  rd (s, r, sizeof r, 0);                          /* miss */
  rd (s, r, sizeof r, 0);                          /* hit */
  cache_get_stats (s, &st);
  assert_int_equal (st.misses, 1);
  assert_int_equal (st.hits, 1);
  /* Read far more than fits, touching block 0 between every batch: it
   * stays; the blocks read once are evicted. */
  for (int i = 1; i < 4096; i++) {
    rd (s, r, sizeof r, (uint64_t) i * 4096);
    random_block (b, sizeof b, (unsigned) i);
    assert_memory_equal (r, b, sizeof b);
    if (i % 16 == 0)
      rd (s, r, sizeof r, 0);
  }
  cache_get_stats (s, &st);
  assert_true (st.evicted > 3000);
  uint64_t misses = st.misses;
  rd (s, r, sizeof r, 0);
  cache_get_stats (s, &st);
  assert_int_equal (st.misses, misses);            /* block 0 survived */
  rd (s, r, sizeof r, 4096);                       /* block 1 did not */
  cache_get_stats (s, &st);
  assert_int_equal (st.misses, misses + 1);
  random_block (b, sizeof b, 1);
  assert_memory_equal (r, b, sizeof b);
  store_close (s);
  fake_free (f);
}

static void
dirty_data_beyond_the_cache_size_is_never_dropped (void **state)
{
  struct fake *f = fake_new (32 << 20);
  struct store *s = cache_on (f, 1 << 20, CACHE_MODE_WRITEBACK);
  uint8_t b[4096];
  struct cache_stats st;

  for (int i = 0; i < 8192; i++) {                 /* 32 MiB through a 1 MiB cache */
    random_block (b, sizeof b, (unsigned) i + 100);
    assert_int_equal (wr (s, b, sizeof b, (uint64_t) i * 4096, 0), 0);
  }
  assert_int_equal (store_flush (s), 0);
  for (int i = 0; i < 8192; i++) {
    random_block (b, sizeof b, (unsigned) i + 100);
    assert_memory_equal (f->data + (size_t) i * 4096, b, sizeof b);
  }
  cache_get_stats (s, &st);
  printf ("written back %llu, writer waits %llu, evicted %llu\n",
          (unsigned long long) st.written_back, (unsigned long long) st.writer_waits,
          (unsigned long long) st.evicted);
  assert_true (st.evicted > 0);                    /* written back, then evicted */
  assert_int_equal (st.dirty_blocks, 0);
  store_close (s);
  fake_free (f);
}

struct writer { struct store *s; atomic_bool done; int r; };

static void *
write_more (void *p)
{
  struct writer *w = p;
  uint8_t b[4096];
  for (int i = 0; i < 1024 && w->r == 0; i++) {
    random_block (b, sizeof b, (unsigned) i + 9000);
    w->r = wr (w->s, b, sizeof b, (uint64_t) (i + 2048) * 4096, 0);
  }
  atomic_store (&w->done, true);
  return NULL;
}

static void
a_writer_waits_while_the_cache_is_full_of_dirty_blocks (void **state)
{
  struct fake *f = fake_new (32 << 20);
  struct store *s = cache_on (f, 1 << 20, CACHE_MODE_WRITEBACK);
  uint8_t b[4096];
  struct writer w = { .s = s };
  pthread_t t;

  f->blocked = true;                               /* the disk hangs */
  pthread_create (&t, NULL, write_more, &w);
  usleep (500 * 1000);
  assert_false (atomic_load (&w.done));            /* waiting, not failing */
  struct cache_stats st;
  cache_get_stats (s, &st);
  assert_true (st.writer_waits > 0);
  pthread_mutex_lock (&f->lock);
  f->blocked = false;
  pthread_cond_broadcast (&f->cond);
  pthread_mutex_unlock (&f->lock);
  pthread_join (t, NULL);
  assert_int_equal (w.r, 0);
  assert_int_equal (store_flush (s), 0);
  for (int i = 0; i < 1024; i++) {
    random_block (b, sizeof b, (unsigned) i + 9000);
    assert_memory_equal (f->data + (size_t) (i + 2048) * 4096, b, sizeof b);
  }
  store_close (s);
  fake_free (f);
}

static void
a_failing_store_keeps_blocks_dirty_and_flush_reports_it (void **state)
{
  struct fake *f = fake_new (1 << 20);
  struct store *s = cache_on (f, 0, CACHE_MODE_WRITEBACK);
  uint8_t b[4096];
  struct cache_stats st;

  random_block (b, sizeof b, 5);
  assert_int_equal (wr (s, b, sizeof b, 4096, 0), 0);
  f->fail = EIO;
  assert_int_equal (store_flush (s), -1);
  assert_int_equal (errno, EIO);
  cache_get_stats (s, &st);
  assert_int_equal (st.dirty_blocks, 1);
  f->fail = 0;
  assert_int_equal (store_flush (s), 0);
  assert_memory_equal (f->data + 4096, b, sizeof b);
  store_close (s);
  fake_free (f);
}

static void
zeroes_and_trims_are_written_back_as_zero_requests (void **state)
{
  struct fake *f = fake_new (1 << 20);
  struct store *s = cache_on (f, 0, CACHE_MODE_WRITEBACK);
  uint8_t r[8192];

  memset (f->data, 0xaa, 1 << 20);
  assert_int_equal (store_zero (s, 0, 65536, 0), 0);
  assert_int_equal (store_trim (s, 65536, 65536), 0);
  assert_int_equal (store_zero (s, 200000, 1000, 0), 0);     /* partial blocks */
  rd (s, r, sizeof r, 0);
  for (size_t i = 0; i < sizeof r; i++) assert_int_equal (r[i], 0);
  assert_int_equal (store_flush (s), 0);
  assert_true (f->nzeroes >= 1);
  for (size_t i = 0; i < 131072; i++) assert_int_equal (f->data[i], 0);
  for (size_t i = 200000; i < 201000; i++) assert_int_equal (f->data[i], 0);
  assert_int_equal (f->data[199999], 0xaa);
  assert_int_equal (f->data[201000], 0xaa);
  store_close (s);
  fake_free (f);
}

/* A cache that cannot hold one raw block (its chunk and descriptor
 * take two pages) has nothing to evict and nothing to write back: the
 * writer gets ENOSPC instead of waiting for ever, which also held up
 * shutdown.  One request's minimum is at least what the request holds. */
static void
a_cache_too_small_for_one_block_gives_enospc_not_a_hang (void **state)
{
  struct fake *f = fake_new (1 << 20);
  struct store *s = cache_on (f, 4096, CACHE_MODE_WRITEBACK);
  uint8_t *buf = malloc (65536);

  assert_non_null (buf);
  random_block (buf, 65536, 3);
  assert_int_equal (wr (s, buf, 65536, 0, 0), -1);
  assert_int_equal (errno, ENOSPC);
  assert_true (cache_min_mem_limit (4096, 65536) >= 65536 + 4096);
  assert_true (cache_min_mem_limit (65536, 1 << 20) >= (1 << 20) + 65536);
  store_close (s);
  free (buf);
  fake_free (f);
}

static void
modes_parse_by_name (void **state)
{
  enum cache_mode m;
  assert_int_equal (cache_mode_parse ("writeback", &m), 0);   assert_int_equal (m, CACHE_MODE_WRITEBACK);
  assert_int_equal (cache_mode_parse ("writethrough", &m), 0); assert_int_equal (m, CACHE_MODE_WRITETHROUGH);
  assert_int_equal (cache_mode_parse ("off", &m), 0);         assert_int_equal (m, CACHE_MODE_OFF);
  assert_int_equal (cache_mode_parse ("sometimes", &m), -1);
  assert_string_equal (cache_mode_name (CACHE_MODE_WRITETHROUGH), "writethrough");
  struct fake *f = fake_new (1 << 20);
  struct cache_config cc = { .backing = &f->s, .mode = CACHE_MODE_OFF };
  assert_ptr_equal (cache_create (&cc), &f->s);      /* off: no cache at all */
  fake_free (f);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (write_back_is_in_lba_order_with_adjacent_blocks_coalesced),
    cmocka_unit_test (fua_and_writethrough_reach_the_store_before_returning),
    cmocka_unit_test (reads_miss_then_hit_and_clean_blocks_are_evicted_least_recent_first),
    cmocka_unit_test (dirty_data_beyond_the_cache_size_is_never_dropped),
    cmocka_unit_test (a_writer_waits_while_the_cache_is_full_of_dirty_blocks),
    cmocka_unit_test (a_failing_store_keeps_blocks_dirty_and_flush_reports_it),
    cmocka_unit_test (zeroes_and_trims_are_written_back_as_zero_requests),
    cmocka_unit_test (a_cache_too_small_for_one_block_gives_enospc_not_a_hang),
    cmocka_unit_test (modes_parse_by_name),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
