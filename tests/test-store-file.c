/* The file store on a real file: create and size, round trips through many
 * iovec entries, FUA and flush, trim and zero (with the filesystem's own
 * hole punching where it has it), fast zero, read-only opens, missing
 * files, reopening, a file that shrinks under the store, and O_DIRECT. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

#define MiB (1024u * 1024u)

static char path[4096];

static int
setup (void **state)
{
  const char *dir = getenv ("TMPDIR");
  int fd;

  snprintf (path, sizeof path, "%s/test-store-file.XXXXXX",
            dir && *dir ? dir : "/tmp");
  fd = mkstemp (path);
  if (fd == -1)
    return -1;
  close (fd);
  return 0;
}

static int
teardown (void **state)
{
  unlink (path);
  return 0;
}

static struct store_stats
stats (struct store *s)
{
  struct store_stats st;

  store_get_stats (s, &st);
  return st;
}

static void
fill (unsigned char *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char) ((i * 131 + seed * 17) % 251 + 1);
}

static int
write_buf (struct store *s, const void *buf, size_t len, uint64_t off,
           unsigned flags)
{
  struct iovec iov = { (void *) buf, len };

  return store_pwrite (s, &iov, 1, off, flags);
}

static int
read_buf (struct store *s, void *buf, size_t len, uint64_t off)
{
  struct iovec iov = { buf, len };

  return store_pread (s, &iov, 1, off);
}

static bool
is_zero (const unsigned char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

static void
create_sizes_the_file_and_data_round_trips (void **state)
{
  struct store *s = store_file_open (path, STORE_FILE_CREATE, 4 * MiB);
  unsigned char *buf = malloc (4 * MiB), *got = malloc (4 * MiB);
  struct iovec iov[2000];
  struct stat sb;

  assert_non_null (s);
  assert_int_equal (s->size, 4 * MiB);
  assert_int_equal (stat (path, &sb), 0);
  assert_int_equal (sb.st_size, 4 * MiB);
  assert_true (s->caps & STORE_CAP_PERSISTENT);
  assert_false (s->caps & STORE_CAP_READ_ONLY);

  /* A freshly extended file reads as zeroes. */
  memset (got, 0xFF, MiB);
  assert_int_equal (read_buf (s, got, MiB, 3 * MiB), 0);
  assert_true (is_zero (got, MiB));

  /* More iovec entries than one system call takes, at an odd offset. */
  fill (buf, 2000 * 512, 1);
  for (int i = 0; i < 2000; i++)
    iov[i] = (struct iovec) { buf + (size_t) i * 512, 512 };
  assert_int_equal (store_pwrite (s, iov, 2000, 12345, 0), 0);
  for (int i = 0; i < 2000; i++)
    iov[i] = (struct iovec) { got + (size_t) i * 512, 512 };
  assert_int_equal (store_pread (s, iov, 2000, 12345), 0);
  assert_memory_equal (got, buf, 2000 * 512);

  /* FUA and flush. */
  fill (buf, 65536, 2);
  assert_int_equal (write_buf (s, buf, 65536, 2 * MiB + 512, STORE_FUA), 0);
  assert_int_equal (read_buf (s, got, 65536, 2 * MiB + 512), 0);
  assert_memory_equal (got, buf, 65536);
  assert_int_equal (store_flush (s), 0);
  assert_int_equal (stats (s).writes, 2);
  assert_int_equal (stats (s).reads, 3);
  assert_int_equal (stats (s).flushes, 1);
  assert_true (stats (s).bytes_allocated >= 2000 * 512 + 65536);
  store_close (s);

  /* Reopened without CREATE: same size, same data.  A smaller create_size
   * never shrinks the file. */
  s = store_file_open (path, STORE_FILE_CREATE, MiB);
  assert_non_null (s);
  assert_int_equal (s->size, 4 * MiB);
  assert_int_equal (read_buf (s, got, 65536, 2 * MiB + 512), 0);
  assert_memory_equal (got, buf, 65536);
  store_close (s);
  s = store_file_open (path, 0, 0);
  assert_non_null (s);
  assert_int_equal (s->size, 4 * MiB);
  assert_int_equal (read_buf (s, got, 65536, 2 * MiB + 512), 0);
  assert_memory_equal (got, buf, 65536);
  store_close (s);
  free (buf);
  free (got);
}

static void
trim_punches_a_hole_that_extents_report_and_reads_as_zeroes (void **state)
{
  struct store *s = store_file_open (path, STORE_FILE_CREATE, 4 * MiB);
  unsigned char *buf = malloc (4 * MiB);
  uint64_t before, len;
  bool alloc;

  assert_non_null (s);
  fill (buf, 4 * MiB, 3);
  assert_int_equal (write_buf (s, buf, 4 * MiB, 0, 0), 0);
  assert_int_equal (store_flush (s), 0);
  before = stats (s).bytes_allocated;

  assert_int_equal (store_trim (s, MiB, MiB), 0);
  assert_int_equal (read_buf (s, buf, 4 * MiB, 0), 0);
  assert_true (is_zero (buf + MiB, MiB));
  assert_false (is_zero (buf + MiB - 1, 1));
  assert_false (is_zero (buf + 2 * MiB, 1));
  assert_int_equal (stats (s).trims, 1);

  if (!(s->caps & STORE_CAP_TRIM))
    fprintf (stderr, "skipping hole checks: the filesystem of %s cannot "
             "punch holes\n", path);
  else {
    assert_true (stats (s).bytes_allocated <= before - MiB);
    if (s->caps & STORE_CAP_EXTENTS) {
      assert_int_equal (store_extent (s, 0, 4 * MiB, &len, &alloc), 0);
      assert_true (alloc);
      assert_int_equal (len, MiB);
      assert_int_equal (store_extent (s, MiB, 3 * MiB, &len, &alloc), 0);
      assert_false (alloc);
      assert_int_equal (len, MiB);
      assert_int_equal (store_extent (s, MiB + 4096, 8192, &len, &alloc), 0);
      assert_false (alloc);
      assert_int_equal (len, 8192);
      assert_int_equal (store_extent (s, 2 * MiB, 2 * MiB, &len, &alloc), 0);
      assert_true (alloc);
      assert_int_equal (len, 2 * MiB);
    }
  }
  free (buf);
  store_close (s);
}

static void
zero_reads_back_zeroes_with_and_without_may_trim (void **state)
{
  struct store *s = store_file_open (path, STORE_FILE_CREATE, 4 * MiB);
  unsigned char *buf = malloc (4 * MiB);
  uint64_t before;

  assert_non_null (s);
  fill (buf, 4 * MiB, 4);
  assert_int_equal (write_buf (s, buf, 4 * MiB, 0, 0), 0);
  assert_int_equal (store_flush (s), 0);
  before = stats (s).bytes_allocated;

  /* Without MAY_TRIM: zeroes, and the space stays provisioned. */
  assert_int_equal (store_zero (s, 512, MiB, 0), 0);
  assert_int_equal (stats (s).bytes_allocated, before);
  /* With MAY_TRIM: zeroes, and the space may go. */
  assert_int_equal (store_zero (s, 2 * MiB, MiB + 512, STORE_MAY_TRIM), 0);
  /* st_blocks also counts the file system's own extent blocks: the
   * zeroed range above split the file's extents, and ext4 may have
   * taken a 4 KiB index block for them. */
  if (s->caps & STORE_CAP_TRIM)
    assert_true (stats (s).bytes_allocated <= before - MiB + 16 * 1024);

  assert_int_equal (read_buf (s, buf, 4 * MiB, 0), 0);
  assert_false (is_zero (buf, 512));
  assert_true (is_zero (buf + 512, MiB));
  assert_false (is_zero (buf + 512 + MiB, 1));
  assert_false (is_zero (buf + 2 * MiB - 1, 1));
  assert_true (is_zero (buf + 2 * MiB, MiB + 512));
  assert_false (is_zero (buf + 3 * MiB + 512, 1));
  assert_int_equal (stats (s).zeroes, 2);
  free (buf);
  store_close (s);
}

static void
fast_zero_succeeds_only_where_zeroing_is_cheap (void **state)
{
  struct store *s = store_file_open (path, STORE_FILE_CREATE, MiB);
  unsigned char *buf = malloc (MiB);
  int r;

  assert_non_null (s);
  fill (buf, MiB, 5);
  assert_int_equal (write_buf (s, buf, MiB, 0, 0), 0);
  errno = 0;
  r = store_zero (s, 4096, 65536, STORE_FAST_ZERO);
  assert_int_equal (read_buf (s, buf, MiB, 0), 0);
  if (s->caps & STORE_CAP_FAST_ZERO) {
    assert_int_equal (r, 0);
    assert_true (is_zero (buf + 4096, 65536));
    r = store_zero (s, 200000, 5000, STORE_FAST_ZERO | STORE_MAY_TRIM);
    assert_int_equal (r, 0);
    assert_int_equal (read_buf (s, buf, MiB, 0), 0);
    assert_true (is_zero (buf + 200000, 5000));
    assert_false (is_zero (buf + 200000 - 1, 1));
    assert_false (is_zero (buf + 205000, 1));
  }
  else {
    fprintf (stderr, "the filesystem of %s has no fast zero: checking the "
             "ENOTSUP answer\n", path);
    assert_int_equal (r, -1);
    assert_int_equal (errno, ENOTSUP);
    assert_false (is_zero (buf + 4096, 1));       /* untouched */
  }
  assert_false (is_zero (buf + 4095, 1));
  assert_false (is_zero (buf + 4096 + 65536, 1));
  free (buf);
  store_close (s);
}

static void
read_only_open_refuses_writes_with_erofs (void **state)
{
  struct store *s = store_file_open (path, STORE_FILE_CREATE, MiB);
  unsigned char buf[4096], got[4096];

  assert_non_null (s);
  fill (buf, sizeof buf, 6);
  assert_int_equal (write_buf (s, buf, sizeof buf, 8192, 0), 0);
  store_close (s);

  s = store_file_open (path, STORE_FILE_READ_ONLY, 0);
  assert_non_null (s);
  assert_true (s->caps & STORE_CAP_READ_ONLY);
  assert_false (s->caps & STORE_CAP_TRIM);
  assert_int_equal (read_buf (s, got, sizeof got, 8192), 0);
  assert_memory_equal (got, buf, sizeof buf);
  errno = 0;
  assert_int_equal (write_buf (s, buf, sizeof buf, 0, 0), -1);
  assert_int_equal (errno, EROFS);
  errno = 0;
  assert_int_equal (store_trim (s, 0, 4096), -1);
  assert_int_equal (errno, EROFS);
  errno = 0;
  assert_int_equal (store_zero (s, 0, 4096, STORE_MAY_TRIM), -1);
  assert_int_equal (errno, EROFS);
  assert_int_equal (store_flush (s), 0);
  assert_int_equal (read_buf (s, got, sizeof got, 8192), 0);
  assert_memory_equal (got, buf, sizeof buf);
  store_close (s);

  errno = 0;
  assert_null (store_file_open (path, STORE_FILE_READ_ONLY | STORE_FILE_CREATE,
                                MiB));
  assert_int_equal (errno, EINVAL);
}

static void
bad_paths_and_empty_files_are_refused (void **state)
{
  char missing[4200];
  int fd;

  snprintf (missing, sizeof missing, "%s.missing", path);
  errno = 0;
  assert_null (store_file_open (missing, 0, 0));
  assert_int_equal (errno, ENOENT);
  errno = 0;
  assert_null (store_file_open (missing, STORE_FILE_READ_ONLY, 0));
  assert_int_equal (errno, ENOENT);

  /* An empty file has nothing to serve. */
  fd = open (path, O_WRONLY | O_TRUNC);
  assert_true (fd >= 0);
  close (fd);
  errno = 0;
  assert_null (store_file_open (path, 0, 0));
  assert_int_equal (errno, EINVAL);

  /* Neither a regular file nor a block device. */
  errno = 0;
  assert_null (store_file_open ("/dev/null", 0, 0));
  assert_int_equal (errno, EINVAL);
}

/* The store never changes the file's size, and never invents data: what
 * is gone fails with EIO, what is left still reads and writes. */
static void
a_file_that_shrinks_under_the_store_fails_past_its_end_and_keeps_its_size (void **state)
{
  struct store *s = store_file_open (path, STORE_FILE_CREATE, MiB);
  unsigned char buf[16384], got[16384];
  struct iovec iov[2];
  struct store_stats st;
  struct stat sb;

  assert_non_null (s);
  fill (buf, sizeof buf, 7);
  assert_int_equal (write_buf (s, buf, sizeof buf, 0, 0), 0);
  assert_int_equal (truncate (path, 5000), 0);
  /* End of file falls inside the first entry. */
  iov[0] = (struct iovec) { got, 8192 };
  iov[1] = (struct iovec) { got + 8192, 8192 };
  errno = 0;
  assert_int_equal (store_pread (s, iov, 2, 0), -1);
  assert_int_equal (errno, EIO);
  assert_int_equal (read_buf (s, got, 4096, 65536), -1);
  assert_int_equal (errno, EIO);
  /* Writes, zeroes and trims past the end fail and do not extend it. */
  assert_int_equal (write_buf (s, buf, 4096, 4096, 0), -1);
  assert_int_equal (errno, EIO);
  assert_int_equal (write_buf (s, buf, 512, MiB - 512, STORE_FUA), -1);
  assert_int_equal (store_zero (s, 8192, 4096, 0), -1);
  assert_int_equal (errno, EIO);
  assert_int_equal (store_trim (s, 8192, 4096), -1);
  assert_int_equal (errno, EIO);
  assert_int_equal (stat (path, &sb), 0);
  assert_int_equal (sb.st_size, 5000);
  /* What is left is still the store's. */
  memset (got, 0, sizeof got);
  assert_int_equal (read_buf (s, got, 4096, 0), 0);
  assert_memory_equal (got, buf, 4096);
  assert_int_equal (write_buf (s, buf + 4096, 4096, 0, 0), 0);
  assert_int_equal (read_buf (s, got, 4096, 0), 0);
  assert_memory_equal (got, buf + 4096, 4096);
  store_get_stats (s, &st);
  assert_int_equal (st.short_file_errors, 6);
  assert_int_equal (st.short_file_size, 5000);
  store_close (s);
  assert_int_equal (stat (path, &sb), 0);
  assert_int_equal (sb.st_size, 5000);
}

static void
direct_io_round_trips_with_aligned_buffers (void **state)
{
  struct store *s = store_file_open (path, STORE_FILE_CREATE | STORE_FILE_DIRECT,
                                     MiB);
  void *a = NULL, *b = NULL;

  if (s == NULL && errno == EINVAL) {
    fprintf (stderr, "skipping: the filesystem of %s refuses O_DIRECT\n",
             path);
    return;
  }
  assert_non_null (s);
  assert_int_equal (posix_memalign (&a, 4096, 65536), 0);
  assert_int_equal (posix_memalign (&b, 4096, 65536), 0);
  fill (a, 65536, 8);
  assert_int_equal (write_buf (s, a, 65536, 4096, STORE_FUA), 0);
  assert_int_equal (read_buf (s, b, 65536, 4096), 0);
  assert_memory_equal (a, b, 65536);
  /* Zeroing that falls back to writing uses an aligned zero buffer. */
  assert_int_equal (store_zero (s, 8192, 16384, 0), 0);
  assert_int_equal (read_buf (s, b, 65536, 4096), 0);
  assert_memory_equal (a, b, 4096);
  assert_true (is_zero ((unsigned char *) b + 4096, 16384));
  free (a);
  free (b);
  store_close (s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (create_sizes_the_file_and_data_round_trips, setup, teardown),
    cmocka_unit_test_setup_teardown (trim_punches_a_hole_that_extents_report_and_reads_as_zeroes, setup, teardown),
    cmocka_unit_test_setup_teardown (zero_reads_back_zeroes_with_and_without_may_trim, setup, teardown),
    cmocka_unit_test_setup_teardown (fast_zero_succeeds_only_where_zeroing_is_cheap, setup, teardown),
    cmocka_unit_test_setup_teardown (read_only_open_refuses_writes_with_erofs, setup, teardown),
    cmocka_unit_test_setup_teardown (bad_paths_and_empty_files_are_refused, setup, teardown),
    cmocka_unit_test_setup_teardown (a_file_that_shrinks_under_the_store_fails_past_its_end_and_keeps_its_size, setup, teardown),
    cmocka_unit_test_setup_teardown (direct_io_round_trips_with_aligned_buffers, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
