/* Swap mode's promise, module by module: once the command pool and the
 * vector pool are preallocated and the block map runs on its reserve,
 * serving I/O calls no allocator at all, and nothing that maps, locks or
 * advises memory.  The test links with --wrap for the malloc family and
 * mmap, munmap, mprotect, madvise, mlock and munlock, so every such call
 * the modules make passes through a counter here; it counts only while a
 * test case says so, and the calls of the block map's refill thread
 * (named sgblk-refill), which works outside the I/O path so that the
 * I/O path need not, apart.
 *
 * What a fixed pool does instead of allocating is checked too: the
 * command pool falls back to its reserve and then refuses (or waits);
 * the vector pool hands out a larger vector, waits for a free, refuses a
 * length above its largest vector with E2BIG and keeps its memory across
 * a flush; the block map takes memory its refill thread mapped, reuses
 * memory freed by overwrites and trims and answers ENOSPC, never ENOMEM,
 * at its memory limit.  A thread maps the block map's scratch once, ahead
 * of its I/O when it prepares, and unmaps it when it exits. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cache.h"
#include "scsi.h"
#include "sgv.h"
#include "store.h"

/* ---- the counter behind --wrap ---- */

static atomic_bool counting;
static atomic_uint calls, refill_calls;

/* Is the calling thread the block map's refill thread?  (prctl: a system
 * call, no allocation.) */
static bool
in_refill_thread (void)
{
  char name[17] = "";
  prctl (PR_GET_NAME, name, 0, 0, 0);
  return strcmp (name, "sgblk-refill") == 0;
}

#define COUNT() do { if (atomic_load (&counting)) \
      atomic_fetch_add (in_refill_thread () ? &refill_calls : &calls, 1); } while (0)

void *__real_malloc (size_t n);
void *__real_calloc (size_t n, size_t size);
void *__real_realloc (void *p, size_t n);
void __real_free (void *p);
int __real_posix_memalign (void **p, size_t align, size_t n);
void *__real_aligned_alloc (size_t align, size_t n);
void *__real_mmap (void *a, size_t n, int prot, int flags, int fd, off_t off);
int __real_munmap (void *a, size_t n);
int __real_mprotect (void *a, size_t n, int prot);
int __real_madvise (void *a, size_t n, int advice);
int __real_mlock (const void *a, size_t n);
int __real_munlock (const void *a, size_t n);
void *__wrap_malloc (size_t n);
void *__wrap_calloc (size_t n, size_t size);
void *__wrap_realloc (void *p, size_t n);
void __wrap_free (void *p);
int __wrap_posix_memalign (void **p, size_t align, size_t n);
void *__wrap_aligned_alloc (size_t align, size_t n);
void *__wrap_mmap (void *a, size_t n, int prot, int flags, int fd, off_t off);
int __wrap_munmap (void *a, size_t n);
int __wrap_mprotect (void *a, size_t n, int prot);
int __wrap_madvise (void *a, size_t n, int advice);
int __wrap_mlock (const void *a, size_t n);
int __wrap_munlock (const void *a, size_t n);

void *__wrap_malloc (size_t n) { COUNT (); return __real_malloc (n); }
void *__wrap_calloc (size_t n, size_t size) { COUNT (); return __real_calloc (n, size); }
void *__wrap_realloc (void *p, size_t n) { COUNT (); return __real_realloc (p, n); }
void __wrap_free (void *p) { if (p) COUNT (); __real_free (p); }
int __wrap_posix_memalign (void **p, size_t align, size_t n) { COUNT (); return __real_posix_memalign (p, align, n); }
void *__wrap_aligned_alloc (size_t align, size_t n) { COUNT (); return __real_aligned_alloc (align, n); }
void *__wrap_mmap (void *a, size_t n, int prot, int flags, int fd, off_t off) { COUNT (); return __real_mmap (a, n, prot, flags, fd, off); }
int __wrap_munmap (void *a, size_t n) { COUNT (); return __real_munmap (a, n); }
int __wrap_mprotect (void *a, size_t n, int prot) { COUNT (); return __real_mprotect (a, n, prot); }
int __wrap_madvise (void *a, size_t n, int advice) { COUNT (); return __real_madvise (a, n, advice); }
int __wrap_mlock (const void *a, size_t n) { COUNT (); return __real_mlock (a, n); }
int __wrap_munlock (const void *a, size_t n) { COUNT (); return __real_munlock (a, n); }

static void
count_from_now (void)
{
  atomic_store (&calls, 0);
  atomic_store (&refill_calls, 0);
  atomic_store (&counting, true);
}

static unsigned
counted (void)
{
  atomic_store (&counting, false);
  return atomic_load (&calls);
}

/* The counter itself works: without this the zeros below prove nothing. */
static void
the_counter_sees_the_modules_allocate (void **state)
{
  count_from_now ();
  struct sgv_pool *p = sgv_pool_create (NULL);
  struct sgv_vec *v = sgv_alloc (p, 4096);
  sgv_free (p, v);
  sgv_pool_destroy (p);
  assert_true (counted () >= 4);   /* pool, vector header, data, and frees */
}

/* ---- command pool ---- */

static void
a_prefilled_command_pool_uses_cache_then_reserve_then_refuses (void **state)
{
  struct scsi_cmd_pool_config cfg = { .reserve = 4 };
  struct scsi_cmd_pool *p = scsi_cmd_pool_create (&cfg);
  struct scsi_cmd *c[13];
  struct scsi_pool_stats st;

  assert_non_null (p);
  assert_int_equal (scsi_cmd_pool_prefill (p, 8), 0);
  count_from_now ();
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 12; i++) {
      c[i] = scsi_cmd_get (p, false);
      assert_non_null (c[i]);
      assert_non_null (c[i]->sense);
    }
    c[12] = scsi_cmd_get (p, false);
    assert_null (c[12]);
    assert_int_equal (errno, EAGAIN);
    for (int i = 0; i < 12; i++)
      scsi_cmd_put (p, c[i]);
  }
  assert_int_equal (counted (), 0);
  scsi_cmd_pool_get_stats (p, &st);
  assert_int_equal (st.allocated, 8);
  assert_int_equal (st.cached, 8);
  assert_int_equal (st.fallbacks, 12);
  assert_int_equal (st.reserve_level, 4);
  assert_int_equal (scsi_cmd_pool_destroy (p), 0);
}

/* ---- vector pool ---- */

static unsigned releases;
static void count_release (struct sgv_vec *v, void *opaque) { releases++; }

struct waiter {
  struct sgv_pool *p;
  struct sgv_vec *got;
  atomic_bool done;
};

static void *
wait_for_vector (void *arg)
{
  struct waiter *w = arg;
  w->got = sgv_alloc (w->p, 8192);
  atomic_store (&w->done, true);
  return NULL;
}

static void
a_prefilled_vector_pool_lends_larger_vectors_and_waits (void **state)
{
  struct sgv_pool_config cfg = { .release = count_release };
  struct sgv_pool *p = sgv_pool_create (&cfg);
  struct sgv_stats st;

  assert_non_null (p);
  assert_int_equal (sgv_pool_prefill (p, 0, 2), 0);   /* 4 KiB */
  assert_int_equal (sgv_pool_prefill (p, 3, 1), 0);   /* 32 KiB */
  count_from_now ();

  struct sgv_vec *a = sgv_alloc (p, 4096), *b = sgv_alloc (p, 100);
  assert_non_null (a);
  assert_non_null (b);
  assert_int_equal (a->capacity, 4096);
  /* Its own order is out: the 32 KiB vector serves 4 KiB, described as 4 KiB. */
  struct sgv_vec *c = sgv_alloc (p, 4096);
  assert_non_null (c);
  assert_int_equal (c->capacity, 32768);
  assert_int_equal (c->len, 4096);
  assert_int_equal (c->nents, 1);
  assert_int_equal (c->iov[0].iov_len, 4096);
  memset (c->iov[0].iov_base, 0xab, 4096);

  /* Longer than anything the pool holds. */
  assert_null (sgv_alloc (p, 65536));
  assert_int_equal (errno, E2BIG);

  /* Everything that could hold 8 KiB is out: the allocation waits for a free. */
  struct waiter w = { .p = p };
  pthread_t t;
  assert_int_equal (pthread_create (&t, NULL, wait_for_vector, &w), 0);
  for (int i = 0; i < 200; i++) {
    sgv_pool_get_stats (p, &st);
    if (st.waits)
      break;
    usleep (5000);
  }
  assert_int_equal (st.waits, 1);
  assert_false (atomic_load (&w.done));
  sgv_free (p, a);                    /* too small for 8 KiB: still waiting */
  usleep (20000);
  assert_false (atomic_load (&w.done));
  sgv_free (p, c);
  pthread_join (t, NULL);
  assert_non_null (w.got);
  assert_int_equal (w.got->capacity, 32768);
  assert_int_equal (w.got->len, 8192);
  sgv_free (p, w.got);
  sgv_free (p, b);
  unsigned n = counted ();
  assert_int_equal (n, 0);

  /* A flush drops what idle vectors pin (the callback runs on each) but
   * keeps their memory: the next allocation is a hit. */
  releases = 0;
  count_from_now ();
  assert_int_equal (sgv_pool_flush (p), 3);
  assert_int_equal (releases, 3);
  sgv_pool_trim (p);
  struct sgv_vec *d = sgv_alloc (p, 4096);
  assert_non_null (d);
  sgv_free (p, d);
  assert_int_equal (counted (), 0);
  sgv_pool_get_stats (p, &st);
  assert_int_equal (st.allocated, 3);
  assert_int_equal (st.cached, 3);
  assert_int_equal (st.misses, 0);
  assert_int_equal (sgv_pool_destroy (p), 0);
  assert_int_equal (releases, 6);     /* destroy releases them for good */
}

/* ---- the block map ---- */

static void
fill (uint8_t *b, size_t n, unsigned seed, unsigned kind)
{
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    /* kind 0: random (stored raw); 1: a little entropy (compresses well);
     * 2: half random, half text. */
    b[i] = kind == 0 ? (uint8_t) x :
           kind == 1 ? (uint8_t) ("sgblk swap page "[i % 16] ^ (i % 512 == 0 ? (uint8_t) x : 0)) :
           i < n / 2 ? (uint8_t) x : (uint8_t) "compressible "[i % 13];
  }
}

static int
put_block (struct store *s, uint64_t blk, const uint8_t *b)
{
  struct iovec iov = { (void *) b, 4096 };
  return store_pwrite (s, &iov, 1, blk * 4096, 0);
}

static int
get_block (struct store *s, uint64_t blk, uint8_t *b)
{
  struct iovec iov = { b, 4096 };
  return store_pread (s, &iov, 1, blk * 4096);
}

static void
a_block_map_on_its_reserve_serves_churn_without_allocating (void **state)
{
  const uint64_t nblocks = 16384;               /* 64 MiB disk */
  struct cache_config cc = { .size = nblocks * 4096, .mem_limit = 8u << 20 };
  struct store *s = cache_create (&cc);
  static uint8_t w[4096], r[4096];
  static uint32_t gen[16384];                   /* 0: never written or trimmed */
  struct cache_stats cs0, cs;

  assert_non_null (s);
  /* A reserve of 1 to 2 MiB: the churn goes through it several times. */
  assert_int_equal (cache_reserve_start (s, 1u << 20, 2u << 20), 0);
  assert_int_equal (cache_get_stats (s, &cs0), 0);
  assert_true (cs0.reserve_bytes >= 2u << 20);  /* filled before it returned */
  /* As every I/O thread does before serving: its scratch is mapped now,
   * not by its first request. */
  assert_int_equal (store_thread_prepare (s), 0);
  count_from_now ();
  unsigned full = 0, ok = 0;
  for (uint32_t round = 1; round <= 6; round++) {
    for (uint64_t blk = 0; blk < nblocks; blk += 1 + (round & 1)) {
      uint32_t g = round * 100000 + (uint32_t) blk;
      fill (w, sizeof w, g, (unsigned) (blk + round) % 3);
      if (put_block (s, blk, w) == 0) {
        gen[blk] = g;
        ok++;
      }
      else {
        assert_int_equal (errno, ENOSPC); /* full, never out of memory */
        full++;
      }
    }
    /* Verify, then trim a third so the next round reuses freed memory. */
    for (uint64_t blk = 0; blk < nblocks; blk++) {
      assert_int_equal (get_block (s, blk, r), 0);
      if (gen[blk]) {
        fill (w, sizeof w, gen[blk], (unsigned) (blk + gen[blk] / 100000) % 3);
        assert_memory_equal (r, w, sizeof w);
      }
    }
    for (uint64_t blk = round % 3; blk < nblocks; blk += 3) {
      assert_int_equal (store_trim (s, blk * 4096, 4096), 0);
      gen[blk] = 0;
    }
  }
  cache_compact (s);                            /* moves objects: no new memory */
  unsigned own = counted ();
  assert_int_equal (own, 0);
  /* The refill thread mapped (or locked again) what the churn took. */
  assert_true (atomic_load (&refill_calls) > 0);
  print_message ("ok %u full %u\n", ok, full);
  assert_true (ok > 15000);
  assert_true (full > 0);                       /* the limit was reached and held */
  assert_int_equal (cache_get_stats (s, &cs), 0);
  assert_true (cs.reserve_refills >= cs0.reserve_refills + (6u << 20));
  /* The limit caps the data; the reserve comes on top. */
  assert_true ((cs.mem_used - cs.reserve_bytes) - (cs0.mem_used - cs0.reserve_bytes) <= cc.mem_limit);
  store_close (s);
}

/* ---- the block map's per-thread scratch ---- */

struct io_thread {
  struct store *s;
  bool prepare, io;
  unsigned ahead, by_io;        /* calls counted by the prepare, by the I/O */
  bool ok;
};

/* Zeroes, so the map itself needs no object memory, whatever its block
 * size: what is counted is the thread's scratch alone. */
static void *
io_thread (void *arg)
{
  struct io_thread *t = arg;
  uint8_t b[4096];
  struct iovec iov = { b, sizeof b }, part = { b, 512 };

  t->ok = true;
  unsigned c0 = atomic_load (&calls);
  if (t->prepare && store_thread_prepare (t->s) == -1)
    t->ok = false;
  unsigned c1 = atomic_load (&calls);
  memset (b, 0, sizeof b);
  if (t->io && (store_pwrite (t->s, &iov, 1, 0, 0) == -1 ||
                store_pwrite (t->s, &part, 1, 512, 0) == -1 ||     /* read-modify-write */
                store_pread (t->s, &iov, 1, 0) == -1 || b[0] != 0))
    t->ok = false;
  t->ahead = c1 - c0;
  t->by_io = atomic_load (&calls) - c1;
  return NULL;
}

/* io_thread twice in one thread: arg is two of them. */
static void *
two_maps (void *arg)
{
  struct io_thread **t = arg;

  io_thread (t[0]);
  return io_thread (t[1]);
}

/* Counted calls of one such thread, from its start to its exit. */
static unsigned
run_io_thread (struct io_thread *t)
{
  pthread_t th;

  count_from_now ();
  assert_int_equal (pthread_create (&th, NULL, io_thread, t), 0);
  assert_int_equal (pthread_join (th, NULL), 0);
  unsigned n = counted ();
  assert_true (t->ok);
  return n;
}

static void
a_thread_maps_its_scratch_once_before_or_at_its_first_io_and_unmaps_it_at_exit (void **state)
{
  struct cache_config cc = { .size = 64u << 20 }, big = { .size = 64u << 20, .block_size = 65536 };
  struct store *s = cache_create (&cc);
  assert_non_null (s);

  /* A thread that does no I/O costs nothing. */
  struct io_thread idle = { .s = s };
  assert_int_equal (run_io_thread (&idle), 0);
  /* Unprepared: mapped by its first I/O (correct, not allocation-free),
   * unmapped at its exit. */
  struct io_thread lazy = { .s = s, .io = true };
  assert_int_equal (run_io_thread (&lazy), 2);
  assert_int_equal (lazy.by_io, 1);
  /* Prepared: mapped ahead, and its I/O maps nothing. */
  struct io_thread ready = { .s = s, .prepare = true, .io = true };
  assert_int_equal (run_io_thread (&ready), 2);
  assert_int_equal (ready.ahead, 1);
  assert_int_equal (ready.by_io, 0);
  /* With a 64 KiB map open, the scratch one thread prepares on the
   * 4 KiB map holds the other's blocks too. */
  struct store *s2 = cache_create (&big);
  assert_non_null (s2);
  struct io_thread first = { .s = s, .prepare = true };
  struct io_thread then = { .s = s2, .io = true };
  struct io_thread *pair[2] = { &first, &then };
  pthread_t th;
  count_from_now ();
  assert_int_equal (pthread_create (&th, NULL, two_maps, pair), 0);
  assert_int_equal (pthread_join (th, NULL), 0);
  assert_int_equal (counted (), 2);
  assert_true (first.ok && then.ok);
  assert_int_equal (first.ahead, 1);
  assert_int_equal (then.by_io, 0);
  store_close (s2);
  store_close (s);
}

static void
a_reserve_needs_a_cache_with_a_limit_and_sound_watermarks (void **state)
{
  struct cache_config cc = { .size = 1u << 20 };
  struct store *s = cache_create (&cc);
  assert_int_equal (cache_reserve_start (s, 1u << 20, 2u << 20), -1);
  assert_int_equal (errno, EINVAL);
  store_close (s);

  cc.mem_limit = 4u << 20;
  s = cache_create (&cc);
  assert_int_equal (cache_reserve_start (s, 2u << 20, 1u << 20), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (cache_reserve_start (s, 0, 0), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (cache_reserve_start (s, 1u << 20, 2u << 20), 0);
  assert_int_equal (cache_reserve_start (s, 1u << 20, 2u << 20), -1);
  assert_int_equal (errno, EBUSY);
  store_close (s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (the_counter_sees_the_modules_allocate),
    cmocka_unit_test (a_prefilled_command_pool_uses_cache_then_reserve_then_refuses),
    cmocka_unit_test (a_prefilled_vector_pool_lends_larger_vectors_and_waits),
    cmocka_unit_test (a_block_map_on_its_reserve_serves_churn_without_allocating),
    cmocka_unit_test (a_thread_maps_its_scratch_once_before_or_at_its_first_io_and_unmaps_it_at_exit),
    cmocka_unit_test (a_reserve_needs_a_cache_with_a_limit_and_sound_watermarks),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
