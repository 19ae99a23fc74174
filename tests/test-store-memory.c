/* The memory store: bytes written at any offset read back, holes read as
 * zeroes and cost no memory, trim and zero give memory back, extents tell
 * holes from data, the memory limit gives ENOSPC without damaging data, and
 * threads writing neighbouring blocks of the same pages do not lose each
 * other's writes. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define PG 4096u

static struct store_stats
stats (struct store *s)
{
  struct store_stats st;

  store_get_stats (s, &st);
  return st;
}

/* Write/read buf through an iovec array cut at odd places, to exercise the
 * store's walking of the caller's segments. */
static int
write_split (struct store *s, const void *buf, size_t len, uint64_t off,
             unsigned flags)
{
  struct iovec iov[4];
  size_t cut[3] = { len / 7, len / 7 + len / 3, len - len / 11 };
  size_t prev = 0;

  for (int i = 0; i < 3; i++) {
    iov[i].iov_base = (char *) buf + prev;
    iov[i].iov_len = cut[i] - prev;
    prev = cut[i];
  }
  iov[3].iov_base = (char *) buf + prev;
  iov[3].iov_len = len - prev;
  return store_pwrite (s, iov, 4, off, flags);
}

static int
read_split (struct store *s, void *buf, size_t len, uint64_t off)
{
  struct iovec iov[3];
  size_t a = len / 5, b = len / 2 + 1 < len ? len / 2 + 1 : len;

  iov[0] = (struct iovec) { buf, a };
  iov[1] = (struct iovec) { (char *) buf + a, b - a };
  iov[2] = (struct iovec) { (char *) buf + b, len - b };
  return store_pread (s, iov, 3, off);
}

static int
write_buf (struct store *s, const void *buf, size_t len, uint64_t off)
{
  struct iovec iov = { (void *) buf, len };

  return store_pwrite (s, &iov, 1, off, 0);
}

static int
read_buf (struct store *s, void *buf, size_t len, uint64_t off)
{
  struct iovec iov = { buf, len };

  return store_pread (s, &iov, 1, off);
}

static void
fill (unsigned char *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char) ((i * 131 + seed * 17) % 251 + 1);   /* never 0 */
}

static void
writes_at_odd_offsets_and_lengths_read_back_exactly (void **state)
{
  const size_t size = 1024 * 1024;
  struct store *s = store_memory_create (size, 0);
  unsigned char *ref = calloc (1, size), *buf = malloc (size);
  unsigned seed = 42;

  assert_non_null (s);
  assert_int_equal (s->size, size);
  assert_int_equal (s->caps & STORE_CAP_PERSISTENT, 0);
  assert_int_equal (s->caps & (STORE_CAP_TRIM | STORE_CAP_FAST_ZERO | STORE_CAP_EXTENTS),
                    STORE_CAP_TRIM | STORE_CAP_FAST_ZERO | STORE_CAP_EXTENTS);
  for (int i = 0; i < 300; i++) {
    size_t len = 1 + (size_t) rand_r (&seed) % 20000;
    uint64_t off = (uint64_t) rand_r (&seed) % (size - len);

    fill (buf, len, (unsigned) i);
    assert_int_equal (write_split (s, buf, len, off, 0), 0);
    memcpy (ref + off, buf, len);

    /* A read straddling the write, also split oddly. */
    uint64_t roff = off > 777 ? off - 777 : 0;
    size_t rlen = len + 1500 < size - roff ? len + 1500 : size - roff;
    assert_int_equal (read_split (s, buf, rlen, roff), 0);
    assert_memory_equal (buf, ref + roff, rlen);
  }
  memset (buf, 0xEE, size);
  assert_int_equal (read_buf (s, buf, size, 0), 0);
  assert_memory_equal (buf, ref, size);
  assert_int_equal (stats (s).writes, 300);
  assert_int_equal (stats (s).reads, 301);

  /* Block-aligned (512) but not page-aligned: the SCSI core's case. */
  fill (buf, 3 * 512, 99);
  assert_int_equal (write_buf (s, buf, 3 * 512, 7 * 512), 0);
  memcpy (ref + 7 * 512, buf, 3 * 512);
  assert_int_equal (read_buf (s, buf, 16 * 512, 0), 0);
  assert_memory_equal (buf, ref, 16 * 512);
  free (ref);
  free (buf);
  store_close (s);
}

static void
holes_read_as_zeroes_and_zero_writes_allocate_nothing (void **state)
{
  struct store *s = store_memory_create (64 * 1024 * 1024, 0);
  unsigned char *buf = malloc (65536), *zero = calloc (1, 65536);

  assert_non_null (s);
  memset (buf, 0xFF, 65536);
  assert_int_equal (read_buf (s, buf, 65536, 40 * 1024 * 1024 + 123), 0);
  assert_memory_equal (buf, zero, 65536);

  /* Zeroes written into holes, aligned or not, allocate nothing. */
  assert_int_equal (write_split (s, zero, 65536, 0, 0), 0);
  assert_int_equal (write_buf (s, zero, 1000, 5000), 0);
  assert_int_equal (stats (s).bytes_allocated, 0);

  /* One non-zero byte allocates one page. */
  buf[0] = 1;
  assert_int_equal (write_buf (s, buf, 1, 5000), 0);
  assert_int_equal (stats (s).bytes_allocated, PG);
  assert_int_equal (read_buf (s, buf, 3 * PG, 0), 0);
  for (size_t i = 0; i < 3 * PG; i++)
    assert_int_equal (buf[i], i == 5000 ? 1 : 0);

  /* A whole page of zeroes over it frees it; a partial one does not. */
  assert_int_equal (write_buf (s, zero, 512, PG), 0);
  assert_int_equal (stats (s).bytes_allocated, PG);
  assert_int_equal (write_buf (s, zero, PG, PG), 0);
  assert_int_equal (stats (s).bytes_allocated, 0);
  assert_int_equal (read_buf (s, buf, 3 * PG, 0), 0);
  assert_memory_equal (buf, zero, 3 * PG);

  /* The last page of a store whose size is not a page multiple. */
  store_close (s);
  s = store_memory_create (10 * PG + 1024, 0);
  assert_non_null (s);
  fill (buf, 1024, 3);
  assert_int_equal (write_buf (s, buf, 1024, 10 * PG), 0);
  memset (buf + 2048, 0, 1024);
  assert_int_equal (read_buf (s, buf + 2048, 1024, 10 * PG), 0);
  assert_memory_equal (buf + 2048, buf, 1024);

  errno = 0;
  assert_null (store_memory_create (0, 0));
  assert_int_equal (errno, EINVAL);
  free (buf);
  free (zero);
  store_close (s);
}

static void
trim_and_zero_free_whole_pages_and_zero_partial_ones (void **state)
{
  const size_t size = 256 * PG;
  struct store *s = store_memory_create (size, 0);
  unsigned char *ref = malloc (size), *buf = malloc (size);

  assert_non_null (s);
  fill (ref, size, 7);
  assert_int_equal (write_buf (s, ref, size, 0), 0);
  assert_int_equal (stats (s).bytes_allocated, size);

  /* 512-aligned, not page-aligned: pages 4..9 go, 3 and 10 are partial. */
  assert_int_equal (store_trim (s, 3 * PG + 512, 7 * PG), 0);
  memset (ref + 3 * PG + 512, 0, 7 * PG);
  assert_int_equal (stats (s).bytes_allocated, size - 6 * PG);
  assert_int_equal (stats (s).trims, 1);

  /* zero, with and without MAY_TRIM or FAST_ZERO, the same. */
  assert_int_equal (store_zero (s, 100 * PG, 8 * PG, 0), 0);
  assert_int_equal (store_zero (s, 120 * PG + 1, 2 * PG, STORE_MAY_TRIM), 0);
  assert_int_equal (store_zero (s, 130 * PG, PG, STORE_FAST_ZERO), 0);
  memset (ref + 100 * PG, 0, 8 * PG);
  memset (ref + 120 * PG + 1, 0, 2 * PG);
  memset (ref + 130 * PG, 0, PG);
  assert_int_equal (stats (s).bytes_allocated, size - (6 + 8 + 1 + 1) * PG);
  assert_int_equal (stats (s).zeroes, 3);

  assert_int_equal (read_buf (s, buf, size, 0), 0);
  assert_memory_equal (buf, ref, size);

  /* A partial trim that leaves a page all zero frees it too. */
  assert_int_equal (store_trim (s, 3 * PG, 512), 0);
  assert_int_equal (stats (s).bytes_allocated, size - (6 + 8 + 1 + 1 + 1) * PG);

  /* Trim of everything, including never-written space. */
  assert_int_equal (store_trim (s, 0, size), 0);
  assert_int_equal (stats (s).bytes_allocated, 0);
  memset (ref, 0, size);
  assert_int_equal (read_buf (s, buf, size, 0), 0);
  assert_memory_equal (buf, ref, size);
  assert_int_equal (store_flush (s), 0);
  assert_int_equal (stats (s).flushes, 1);
  free (ref);
  free (buf);
  store_close (s);
}

static void
extents_report_holes_and_data_clipped_to_the_range (void **state)
{
  /* 64 MiB: several leaves of the page table. */
  const uint64_t size = 64 * 1024 * 1024;
  struct store *s = store_memory_create (size, 0);
  unsigned char buf[PG];
  uint64_t len;
  bool alloc;

  assert_non_null (s);
  fill (buf, PG, 1);
  assert_int_equal (write_buf (s, buf, PG, 2 * PG), 0);
  assert_int_equal (write_buf (s, buf, PG, 3 * PG), 0);
  assert_int_equal (write_buf (s, buf, 10, 10 * PG + 5), 0);
  assert_int_equal (write_buf (s, buf, PG, 40 * 1024 * 1024), 0);

  assert_int_equal (store_extent (s, 0, size, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 2 * PG);
  assert_int_equal (store_extent (s, 2 * PG, size - 2 * PG, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, 2 * PG);
  /* From the middle of a data page. */
  assert_int_equal (store_extent (s, 2 * PG + 1000, 100000, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, 2 * PG - 1000);
  /* Clipped to the asked length. */
  assert_int_equal (store_extent (s, 2 * PG + 512, 512, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, 512);
  assert_int_equal (store_extent (s, 4 * PG + 7, 3 * PG, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 3 * PG);
  assert_int_equal (store_extent (s, 4 * PG, size - 4 * PG, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 6 * PG);
  assert_int_equal (store_extent (s, 10 * PG, size - 10 * PG, &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, PG);
  /* A hole across leaves that were never created. */
  assert_int_equal (store_extent (s, 11 * PG, size - 11 * PG, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 40 * 1024 * 1024 - 11 * PG);
  assert_int_equal (store_extent (s, 40 * 1024 * 1024, size - 40 * 1024 * 1024,
                                  &len, &alloc), 0);
  assert_true (alloc);
  assert_int_equal (len, PG);
  /* The tail: a hole to the end. */
  assert_int_equal (store_extent (s, 40 * 1024 * 1024 + PG,
                                  size - 40 * 1024 * 1024 - PG, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, size - 40 * 1024 * 1024 - PG);

  /* After a trim, the data is a hole. */
  assert_int_equal (store_trim (s, 2 * PG, 2 * PG), 0);
  assert_int_equal (store_extent (s, 0, size, &len, &alloc), 0);
  assert_false (alloc);
  assert_int_equal (len, 10 * PG);
  store_close (s);
}

static void
the_memory_limit_gives_enospc_and_trim_makes_room (void **state)
{
  struct store *s = store_memory_create (1024 * PG, 4 * PG);
  unsigned char page[PG], two[2 * PG], buf[2 * PG], zero[PG];

  assert_non_null (s);
  memset (zero, 0, PG);
  for (unsigned i = 0; i < 4; i++) {
    fill (page, PG, i);
    assert_int_equal (write_buf (s, page, PG, (uint64_t) i * PG), 0);
  }
  assert_int_equal (stats (s).bytes_allocated, 4 * PG);

  /* A fifth page does not fit. */
  fill (page, PG, 9);
  errno = 0;
  assert_int_equal (write_buf (s, page, 100, 9 * PG), -1);
  assert_int_equal (errno, ENOSPC);

  /* A write over page 3 and into page 4 fails whole: page 3 keeps its old
   * data. */
  fill (two, 2 * PG, 8);
  errno = 0;
  assert_int_equal (write_split (s, two, 2 * PG, 3 * PG, 0), -1);
  assert_int_equal (errno, ENOSPC);
  fill (page, PG, 3);
  assert_int_equal (read_buf (s, buf, 2 * PG, 3 * PG), 0);
  assert_memory_equal (buf, page, PG);
  assert_memory_equal (buf + PG, zero, PG);
  assert_int_equal (stats (s).bytes_allocated, 4 * PG);

  /* Overwriting allocated pages and writing zeroes into holes still work. */
  fill (page, PG, 5);
  assert_int_equal (write_buf (s, page, PG, 0), 0);
  assert_int_equal (write_buf (s, zero, PG, 100 * PG), 0);

  /* Trim gives room back. */
  assert_int_equal (store_trim (s, PG, PG), 0);
  assert_int_equal (write_split (s, two, 2 * PG, 3 * PG, 0), 0);
  assert_int_equal (read_buf (s, buf, 2 * PG, 3 * PG), 0);
  assert_memory_equal (buf, two, 2 * PG);
  assert_int_equal (stats (s).bytes_allocated, 4 * PG);
  errno = 0;
  assert_int_equal (write_buf (s, page, 1, 50 * PG), -1);
  assert_int_equal (errno, ENOSPC);
  /* So does zero. */
  assert_int_equal (store_zero (s, 0, PG, 0), 0);
  assert_int_equal (write_buf (s, page, 1, 50 * PG), 0);
  store_close (s);
}

/* Four threads own interleaved 512-byte blocks, so every page is shared by
 * all of them: each writes, reads back and sometimes trims its own blocks. */
#define NTHREADS 4
#define BLK 512u
#define AREA (64 * PG)

struct worker {
  struct store *s;
  unsigned id;
  int errors;
};

static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  unsigned char b[BLK], got[BLK], zero[BLK] = { 0 };

  for (unsigned iter = 0; iter < 50; iter++) {
    for (unsigned blk = w->id; blk < AREA / BLK; blk += NTHREADS) {
      uint64_t off = (uint64_t) blk * BLK;

      fill (b, BLK, blk * 7 + iter);
      if (write_buf (w->s, b, BLK, off) != 0)
        w->errors++;
      if (read_buf (w->s, got, BLK, off) != 0 || memcmp (got, b, BLK) != 0)
        w->errors++;
      if ((blk + iter) % 5 == 0) {
        if (store_trim (w->s, off, BLK) != 0)
          w->errors++;
        if (read_buf (w->s, got, BLK, off) != 0 || memcmp (got, zero, BLK) != 0)
          w->errors++;
        if (write_buf (w->s, b, BLK, off) != 0)
          w->errors++;
      }
    }
  }
  return NULL;
}

static void
threads_writing_neighbouring_blocks_of_shared_pages_lose_nothing (void **state)
{
  struct store *s = store_memory_create (AREA, 0);
  struct worker w[NTHREADS];
  pthread_t t[NTHREADS];
  unsigned char *buf = malloc (AREA), b[BLK];

  assert_non_null (s);
  for (unsigned i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker) { .s = s, .id = i };
    assert_int_equal (pthread_create (&t[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join (t[i], NULL);
    assert_int_equal (w[i].errors, 0);
  }
  assert_int_equal (read_buf (s, buf, AREA, 0), 0);
  for (unsigned blk = 0; blk < AREA / BLK; blk++) {
    fill (b, BLK, blk * 7 + 49);
    assert_memory_equal (buf + (size_t) blk * BLK, b, BLK);
  }
  assert_int_equal (stats (s).bytes_allocated, AREA);
  free (buf);
  store_close (s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (writes_at_odd_offsets_and_lengths_read_back_exactly),
    cmocka_unit_test (holes_read_as_zeroes_and_zero_writes_allocate_nothing),
    cmocka_unit_test (trim_and_zero_free_whole_pages_and_zero_partial_ones),
    cmocka_unit_test (extents_report_holes_and_data_clipped_to_the_range),
    cmocka_unit_test (the_memory_limit_gives_enospc_and_trim_makes_room),
    cmocka_unit_test (threads_writing_neighbouring_blocks_of_shared_pages_lose_nothing),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
