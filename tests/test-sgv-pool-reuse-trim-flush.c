/* The sgv pool: freed vectors are reused without new memory, idle ones are
 * trimmed by age and by the cache limit, flush releases everything idle and
 * runs the release callback without the pool lock, and the data helpers
 * handle offsets that straddle segments. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sgv.h"

static struct sgv_pool *
pool_new (size_t limit, uint64_t idle_ns, sgv_release_fn fn, void *opaque)
{
  struct sgv_pool_config cfg = {
    .name = "test", .cache_limit = limit, .idle_ns = idle_ns,
    .release = fn, .release_opaque = opaque,
  };
  struct sgv_pool *p = sgv_pool_create (&cfg);

  assert_non_null (p);
  return p;
}

static struct sgv_stats
stats (struct sgv_pool *p)
{
  struct sgv_stats st;

  sgv_pool_get_stats (p, &st);
  return st;
}

static size_t
iov_total (const struct sgv_vec *v)
{
  size_t t = 0;

  for (int i = 0; i < v->nents; i++)
    t += v->iov[i].iov_len;
  return t;
}

static void
a_freed_vector_is_reused_for_the_same_order_without_new_memory (void **state)
{
  struct sgv_pool *p = pool_new (0, 0, NULL, NULL);
  struct sgv_vec *v = sgv_alloc (p, 5000);    /* order 1: 8 KiB */
  struct sgv_vec *w;
  void *base;

  assert_non_null (v);
  assert_int_equal (v->len, 5000);
  assert_int_equal (v->capacity, 8192);
  assert_int_equal (v->nents, 1);
  assert_int_equal (iov_total (v), 5000);
  assert_int_equal ((uintptr_t) v->iov[0].iov_base % SGV_PAGE, 0);
  base = v->iov[0].iov_base;
  assert_int_equal (stats (p).misses, 1);
  sgv_free (p, v);
  assert_int_equal (stats (p).cached, 1);
  assert_int_equal (stats (p).cached_bytes, 8192);

  w = sgv_alloc (p, 8192);                    /* same order */
  assert_ptr_equal (w, v);
  assert_ptr_equal (w->iov[0].iov_base, base);
  assert_int_equal (w->len, 8192);
  assert_int_equal (iov_total (w), 8192);
  assert_int_equal (stats (p).hits, 1);
  assert_int_equal (stats (p).misses, 1);
  assert_int_equal (stats (p).allocated, 1);
  assert_int_equal (stats (p).cached, 0);
  assert_int_equal (stats (p).in_use, 1);

  /* A different order does not take it. */
  v = sgv_alloc (p, 4096);
  assert_ptr_not_equal (v, w);
  assert_int_equal (stats (p).misses, 2);
  sgv_free (p, v);
  sgv_free (p, w);

  /* Most recently freed first within an order. */
  v = sgv_alloc (p, 8000);
  w = sgv_alloc (p, 8000);
  sgv_free (p, v);
  sgv_free (p, w);
  assert_ptr_equal (sgv_alloc (p, 7000), w);
  sgv_free (p, w);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

static void
a_reused_large_vector_describes_exactly_the_requested_length (void **state)
{
  struct sgv_pool *p = pool_new (0, 0, NULL, NULL);
  struct sgv_vec *v = sgv_alloc (p, 1024 * 1024);

  assert_non_null (v);
  assert_int_equal (v->nents, 8);
  for (int i = 0; i < 8; i++) {
    assert_int_equal (v->iov[i].iov_len, SGV_MAX_SEG);
    assert_int_equal ((uintptr_t) v->iov[i].iov_base % SGV_PAGE, 0);
  }
  /* A user may advance iov entries; the next user gets them restored. */
  v->iov[0].iov_base = (char *) v->iov[0].iov_base + 100;
  v->iov[0].iov_len -= 100;
  sgv_free (p, v);

  v = sgv_alloc (p, 600 * 1024 + 3);          /* same order (1 MiB) */
  assert_int_equal (stats (p).hits, 1);
  assert_int_equal (v->nents, 5);
  assert_int_equal (v->iov[4].iov_len, 600 * 1024 + 3 - 4 * SGV_MAX_SEG);
  assert_int_equal (iov_total (v), 600 * 1024 + 3);
  assert_int_equal ((uintptr_t) v->iov[0].iov_base % SGV_PAGE, 0);
  sgv_free (p, v);

  v = sgv_alloc (p, 1024 * 1024);
  assert_int_equal (v->nents, 8);
  assert_int_equal (v->iov[7].iov_len, SGV_MAX_SEG);
  assert_int_equal (iov_total (v), 1024 * 1024);
  sgv_free (p, v);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

static void
bad_lengths_are_refused_with_einval (void **state)
{
  struct sgv_pool *p = pool_new (0, 0, NULL, NULL);

  errno = 0;
  assert_null (sgv_alloc (p, 0));
  assert_int_equal (errno, EINVAL);
  errno = 0;
  assert_null (sgv_alloc (p, ((size_t) SGV_PAGE << SGV_MAX_ORDER) + 1));
  assert_int_equal (errno, EINVAL);
  assert_int_equal (stats (p).allocated, 0);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

static void
data_helpers_handle_odd_offsets_across_segments (void **state)
{
  struct sgv_pool *p = pool_new (0, 0, NULL, NULL);
  const size_t len = 1024 * 1024;
  struct sgv_vec *v = sgv_alloc (p, len);
  unsigned char *ref = malloc (len), *out = malloc (len);
  struct iovec sl[16];
  int n;

  assert_non_null (ref);
  assert_non_null (out);
  for (size_t i = 0; i < len; i++)
    ref[i] = (unsigned char) (i * 7 + 3);
  sgv_copy_from_buf (v, 0, ref, len);
  /* Each segment holds the bytes at its position in the vector. */
  for (int i = 0; i < v->nents; i++)
    assert_memory_equal (v->iov[i].iov_base, ref + (size_t) i * SGV_MAX_SEG,
                         v->iov[i].iov_len);

  /* A copy out that starts and ends in the middle of segments. */
  memset (out, 0, len);
  sgv_copy_to_buf (v, SGV_MAX_SEG - 5, out, 3 * SGV_MAX_SEG + 11);
  assert_memory_equal (out, ref + SGV_MAX_SEG - 5, 3 * SGV_MAX_SEG + 11);

  /* A copy in at an odd offset crossing two boundaries. */
  memset (out, 0xAB, len);
  sgv_copy_from_buf (v, 2 * SGV_MAX_SEG - 1, out, SGV_MAX_SEG + 2);
  memset (ref + 2 * SGV_MAX_SEG - 1, 0xAB, SGV_MAX_SEG + 2);
  sgv_copy_to_buf (v, 0, out, len);
  assert_memory_equal (out, ref, len);

  /* Zero and is_zero. */
  assert_false (sgv_is_zero (v, 0, len));
  sgv_zero (v, 3 * SGV_MAX_SEG - 3, SGV_MAX_SEG + 6);
  assert_true (sgv_is_zero (v, 3 * SGV_MAX_SEG - 3, SGV_MAX_SEG + 6));
  assert_false (sgv_is_zero (v, 3 * SGV_MAX_SEG - 4, SGV_MAX_SEG + 6));
  assert_false (sgv_is_zero (v, 3 * SGV_MAX_SEG - 3, SGV_MAX_SEG + 7));
  memset (ref + 3 * SGV_MAX_SEG - 3, 0, SGV_MAX_SEG + 6);
  sgv_copy_to_buf (v, 0, out, len);
  assert_memory_equal (out, ref, len);
  /* A single non-zero byte anywhere is seen, also in the last 16 bytes and
   * in short ranges. */
  sgv_zero (v, 0, len);
  assert_true (sgv_is_zero (v, 0, len));
  const size_t spots[] = { 0, 15, 16, 17, SGV_MAX_SEG - 1, SGV_MAX_SEG,
                           len / 2 + 1, len - 16, len - 1 };
  for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
    unsigned char one = 1;

    sgv_copy_from_buf (v, spots[i], &one, 1);
    assert_false (sgv_is_zero (v, 0, len));
    assert_false (sgv_is_zero (v, spots[i], 1));
    assert_true (sgv_is_zero (v, spots[i] + 1, len - spots[i] - 1));
    sgv_zero (v, spots[i], 1);
    assert_true (sgv_is_zero (v, 0, len));
  }

  /* Slice. */
  n = sgv_slice (v, SGV_MAX_SEG - 1, SGV_MAX_SEG + 2, sl, 16);
  assert_int_equal (n, 3);
  assert_ptr_equal (sl[0].iov_base, (char *) v->iov[0].iov_base + SGV_MAX_SEG - 1);
  assert_int_equal (sl[0].iov_len, 1);
  assert_ptr_equal (sl[1].iov_base, v->iov[1].iov_base);
  assert_int_equal (sl[1].iov_len, SGV_MAX_SEG);
  assert_ptr_equal (sl[2].iov_base, v->iov[2].iov_base);
  assert_int_equal (sl[2].iov_len, 1);
  n = sgv_slice (v, 10, 20, sl, 16);
  assert_int_equal (n, 1);
  assert_ptr_equal (sl[0].iov_base, (char *) v->iov[0].iov_base + 10);
  assert_int_equal (sl[0].iov_len, 20);
  assert_int_equal (sgv_slice (v, 0, len, sl, 8), 8);
  errno = 0;
  assert_int_equal (sgv_slice (v, 0, len, sl, 7), -1);
  assert_int_equal (errno, EINVAL);
  errno = 0;
  assert_int_equal (sgv_slice (v, len - 1, 2, sl, 16), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (sgv_slice (v, 5, 0, sl, 16), 0);

  free (ref);
  free (out);
  sgv_free (p, v);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

static void
trim_releases_only_vectors_idle_longer_than_idle_ns (void **state)
{
  struct sgv_pool *p = pool_new (0, 50 * 1000000ull, NULL, NULL); /* 50 ms */
  struct sgv_vec *a = sgv_alloc (p, 4096), *b = sgv_alloc (p, 65536);
  struct timespec ts = { 0, 120 * 1000000 };

  sgv_free (p, a);
  sgv_free (p, b);
  assert_int_equal (sgv_pool_trim (p), 0);      /* too young */
  assert_int_equal (stats (p).cached, 2);
  nanosleep (&ts, NULL);
  b = sgv_alloc (p, 65536);                     /* hit; b is busy again */
  assert_int_equal (stats (p).hits, 1);
  sgv_free (p, b);                              /* b is young again */
  assert_int_equal (sgv_pool_trim (p), 1);      /* only a */
  assert_int_equal (stats (p).cached, 1);
  assert_int_equal (stats (p).cached_bytes, 65536);
  assert_int_equal (stats (p).trimmed, 1);
  assert_int_equal (stats (p).allocated, 1);
  nanosleep (&ts, NULL);
  assert_int_equal (sgv_pool_trim (p), 1);
  assert_int_equal (stats (p).cached, 0);
  assert_int_equal (stats (p).allocated, 0);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

static void
the_cache_limit_releases_the_oldest_vectors_on_free (void **state)
{
  struct sgv_pool *p = pool_new (3 * 65536, 0, NULL, NULL);
  struct sgv_vec *v[5];

  for (int i = 0; i < 5; i++)
    v[i] = sgv_alloc (p, 65536);
  for (int i = 0; i < 5; i++)
    sgv_free (p, v[i]);
  /* v[0] and v[1] were the oldest and went. */
  assert_int_equal (stats (p).cached, 3);
  assert_int_equal (stats (p).cached_bytes, 3 * 65536);
  assert_int_equal (stats (p).trimmed, 2);
  assert_int_equal (stats (p).allocated, 3);
  /* The newest comes back first. */
  assert_ptr_equal (sgv_alloc (p, 65536), v[4]);
  assert_ptr_equal (sgv_alloc (p, 65536), v[3]);
  assert_ptr_equal (sgv_alloc (p, 65536), v[2]);
  assert_int_equal (stats (p).hits, 3);
  sgv_free (p, v[2]);
  sgv_free (p, v[3]);
  sgv_free (p, v[4]);

  /* A vector bigger than the limit alone is released on free; older small
   * ones go before it. */
  struct sgv_vec *big = sgv_alloc (p, 4 * 65536);
  sgv_free (p, big);
  assert_int_equal (stats (p).cached, 0);
  assert_int_equal (stats (p).cached_bytes, 0);
  assert_int_equal (stats (p).allocated, 0);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

/* Release callback that proves the pool lock is not held: it reads the
 * stats and allocates and frees from the same pool. */
struct rel {
  struct sgv_pool *p;
  unsigned calls;
  bool reenter_alloc;
  struct sgv_vec *seen[64];
};

static void
release_cb (struct sgv_vec *v, void *opaque)
{
  struct rel *r = opaque;
  struct sgv_stats st;

  sgv_pool_get_stats (r->p, &st);     /* would deadlock under the lock */
  assert_true (v->priv == r || v->priv == NULL);
  v->priv = NULL;
  if (r->calls < 64)
    r->seen[r->calls] = v;
  r->calls++;
  if (r->reenter_alloc) {
    struct sgv_vec *w = sgv_alloc (r->p, 3 * SGV_PAGE);

    assert_non_null (w);
    sgv_free (r->p, w);
  }
}

static void
flush_releases_every_idle_vector_without_the_pool_lock (void **state)
{
  struct rel r = { 0 };
  struct sgv_pool *p = pool_new (0, 0, release_cb, &r);
  struct sgv_vec *v[10];
  struct sgv_stats st;

  r.p = p;
  for (int i = 0; i < 10; i++) {
    v[i] = sgv_alloc (p, (size_t) SGV_PAGE << (i % 5));
    v[i]->priv = &r;          /* a reference the callback must drop */
  }
  for (int i = 0; i < 10; i++)
    sgv_free (p, v[i]);
  assert_int_equal (r.calls, 0);      /* caching releases nothing */
  assert_int_equal (stats (p).cached, 10);

  assert_int_equal (sgv_pool_flush (p), 10);
  assert_int_equal (r.calls, 10);
  for (int i = 0; i < 10; i++) {
    bool found = false;
    for (int j = 0; j < 10; j++)
      found |= r.seen[j] == v[i];
    assert_true (found);
  }
  st = stats (p);
  assert_int_equal (st.allocated, 0);
  assert_int_equal (st.in_use, 0);
  assert_int_equal (st.cached, 0);
  assert_int_equal (st.cached_bytes, 0);
  assert_int_equal (st.flushed, 10);
  assert_int_equal (sgv_pool_flush (p), 0);

  /* The callback may even allocate and free from the pool it serves. */
  r.reenter_alloc = true;
  r.calls = 0;
  sgv_free (p, sgv_alloc (p, 100));
  assert_int_equal (sgv_pool_flush (p), 1);
  assert_int_equal (r.calls, 1);
  assert_int_equal (stats (p).cached, 1);   /* what the callback freed */
  r.reenter_alloc = false;
  assert_int_equal (sgv_pool_flush (p), 1);
  assert_int_equal (r.calls, 2);
  st = stats (p);
  assert_int_equal (st.allocated, 0);
  assert_int_equal (st.cached, 0);

  /* Trim and destroy run the callback too. */
  sgv_free (p, sgv_alloc (p, 100));
  assert_int_equal (sgv_pool_destroy (p), 0);
  assert_int_equal (r.calls, 3);
}

static void
fail_every_makes_every_nth_new_allocation_fail_with_enomem (void **state)
{
  struct sgv_pool *p;
  struct sgv_vec *v[6];
  int failures = 0;

#ifndef SGBLK_TEST_HOOKS
  skip ();                          /* built with --disable-test-hooks */
#endif
  p = pool_new (0, 0, NULL, NULL);
  sgv_pool_fail_every (p, 3);
  for (int i = 0; i < 6; i++) {
    errno = 0;
    v[i] = sgv_alloc (p, 4096);
    if (v[i] == NULL) {
      assert_int_equal (errno, ENOMEM);
      failures++;
      assert_true (i == 2 || i == 5);
    }
  }
  assert_int_equal (failures, 2);
  assert_int_equal (stats (p).failed, 2);
  assert_int_equal (stats (p).misses, 4);
  for (int i = 0; i < 6; i++)
    sgv_free (p, v[i]);               /* NULL is ignored */
  /* Cache hits are not affected. */
  for (int i = 0; i < 4; i++)
    v[i] = sgv_alloc (p, 4096);
  for (int i = 0; i < 4; i++)
    assert_non_null (v[i]);
  assert_int_equal (stats (p).hits, 4);
  assert_int_equal (stats (p).failed, 2);
  for (int i = 0; i < 4; i++)
    sgv_free (p, v[i]);
  /* Prefill goes through the same hook. */
  assert_int_equal (sgv_pool_prefill (p, 2, 3), -1);
  assert_int_equal (errno, ENOMEM);
  sgv_pool_fail_every (p, 0);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

static void
prefill_puts_vectors_in_the_cache_for_later_hits (void **state)
{
  struct sgv_pool *p = pool_new (0, 0, NULL, NULL);
  struct sgv_vec *v[4];

  assert_int_equal (sgv_pool_prefill (p, 3, 4), 0);
  assert_int_equal (stats (p).cached, 4);
  assert_int_equal (stats (p).cached_bytes, 4 * 32768);
  assert_int_equal (stats (p).allocated, 4);
  for (int i = 0; i < 4; i++) {
    v[i] = sgv_alloc (p, 30000);
    assert_non_null (v[i]);
    assert_int_equal (v[i]->len, 30000);
    assert_int_equal (iov_total (v[i]), 30000);
  }
  assert_int_equal (stats (p).hits, 4);
  assert_int_equal (stats (p).misses, 0);
  for (int i = 0; i < 4; i++)
    sgv_free (p, v[i]);
  errno = 0;
  assert_int_equal (sgv_pool_prefill (p, SGV_MAX_ORDER + 1, 1), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

static void
destroy_with_a_vector_in_use_returns_ebusy_and_keeps_the_pool (void **state)
{
  struct rel r = { 0 };
  struct sgv_pool *p = pool_new (0, 0, release_cb, &r);
  struct sgv_vec *busy = sgv_alloc (p, 4096);
  struct sgv_vec *idle = sgv_alloc (p, 4096);

  r.p = p;
  sgv_free (p, idle);
  errno = 0;
  assert_int_equal (sgv_pool_destroy (p), -1);
  assert_int_equal (errno, EBUSY);
  /* The idle one was flushed; the busy one is intact and can be freed. */
  assert_int_equal (r.calls, 1);
  assert_int_equal (stats (p).in_use, 1);
  assert_int_equal (stats (p).allocated, 1);
  memset (busy->iov[0].iov_base, 0x5A, 4096);
  sgv_free (p, busy);
  assert_int_equal (sgv_pool_destroy (p), 0);
  assert_int_equal (r.calls, 2);
}

/* Four threads allocate random sizes, stamp the data, check nobody else
 * wrote it, and free, while the cache limit forces trimming. */
struct worker {
  struct sgv_pool *p;
  unsigned seed;
  unsigned id;
  int errors;
};

static void *
worker_main (void *arg)
{
  struct worker *w = arg;

  for (int i = 0; i < 10000; i++) {
    size_t len = 1 + (size_t) rand_r (&w->seed) % (512 * 1024);
    struct sgv_vec *v = sgv_alloc (w->p, len);
    unsigned char tag = (unsigned char) (w->id * 31 + i);
    unsigned char got;

    if (v == NULL || v->len != len || iov_total (v) != len) {
      w->errors++;
      continue;
    }
    sgv_copy_from_buf (v, 0, &tag, 1);
    sgv_copy_from_buf (v, len - 1, &tag, 1);
    if (i % 64 == 0)
      sched_yield ();
    sgv_copy_to_buf (v, 0, &got, 1);
    w->errors += got != tag;
    sgv_copy_to_buf (v, len - 1, &got, 1);
    w->errors += got != tag;
    sgv_free (w->p, v);
    if (i % 1000 == 0)
      sgv_pool_trim (w->p);
  }
  return NULL;
}

static void
four_threads_allocating_and_freeing_keep_the_counters_exact (void **state)
{
  struct sgv_pool *p = pool_new (2 * 1024 * 1024, 1000, NULL, NULL);
  struct worker w[4];
  pthread_t t[4];
  struct sgv_stats st;

  for (unsigned i = 0; i < 4; i++) {
    w[i] = (struct worker) { .p = p, .seed = 1234 + i, .id = i };
    assert_int_equal (pthread_create (&t[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join (t[i], NULL);
    assert_int_equal (w[i].errors, 0);
  }
  st = stats (p);
  assert_int_equal (st.in_use, 0);
  assert_int_equal (st.hits + st.misses, 40000);
  assert_true (st.hits > 0);
  assert_int_equal (st.allocated, st.cached);
  assert_true (st.cached_bytes <= 2 * 1024 * 1024);
  assert_int_equal (sgv_pool_flush (p), st.cached);
  st = stats (p);
  assert_int_equal (st.allocated, 0);
  assert_int_equal (st.cached_bytes, 0);
  assert_int_equal (sgv_pool_destroy (p), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (a_freed_vector_is_reused_for_the_same_order_without_new_memory),
    cmocka_unit_test (a_reused_large_vector_describes_exactly_the_requested_length),
    cmocka_unit_test (bad_lengths_are_refused_with_einval),
    cmocka_unit_test (data_helpers_handle_odd_offsets_across_segments),
    cmocka_unit_test (trim_releases_only_vectors_idle_longer_than_idle_ns),
    cmocka_unit_test (the_cache_limit_releases_the_oldest_vectors_on_free),
    cmocka_unit_test (flush_releases_every_idle_vector_without_the_pool_lock),
    cmocka_unit_test (fail_every_makes_every_nth_new_allocation_fail_with_enomem),
    cmocka_unit_test (prefill_puts_vectors_in_the_cache_for_later_hits),
    cmocka_unit_test (destroy_with_a_vector_in_use_returns_ebusy_and_keeps_the_pool),
    cmocka_unit_test (four_threads_allocating_and_freeing_keep_the_counters_exact),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
