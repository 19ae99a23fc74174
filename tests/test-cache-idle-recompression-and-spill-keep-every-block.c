/* Idle recompression and the spill file keep every block's contents, and
 * do what they promise with memory.
 *
 * Recompression: an in-memory disk holding compressible blocks (text
 * with repeats, and some incompressible ones) is recompressed by one idle
 * pass: the compressed bytes shrink, every block reads back exactly, a
 * rewritten block leaves LZ4HC (back on the fast path), blocks written
 * after the pass are untouched by a pass that wants them idle, an HC
 * object that is damaged is an error and never data, and once every HC
 * block is gone the next pass samples a new dictionary and still decodes.
 *
 * Spill: with a spill file, nothing is written to it while memory stays
 * under the high watermark; past it the spiller moves blocks out and
 * memory in use falls under the low one; every block reads back exactly
 * (incompressible ones were spilled first); rewrites, trims and reads of
 * spilled blocks free their slots; a writer at the limit waits for the
 * spiller instead of failing; a spill file that cannot be written (a
 * file size limit) leaves every block in memory, counts the error and
 * fails writes with ENOSPC at the limit, never losing data; the file is
 * truncated to its header at close; another daemon's spill file (locked)
 * and a file that is not a spill file are refused.
 */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#define BS 4096u

static uint64_t rng = 88172645463325252ull;

static uint64_t
next (void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Block b's contents, version v: text-like and compressible (words from a
 * small vocabulary), or random for one block in eight. */
static void
fill (uint8_t *p, uint64_t b, unsigned v)
{
  static const char *const words[] = {
    "block", "cache", "write", "spill", "memory", "sector", "device", "kernel",
    "struct", "return", "static", "const", "uint64_t", "errno", "lock", "swap",
  };
  uint64_t save = rng;
  rng = (b * 2654435761u + v * 40503u) | 1;
  if (b % 8 == 7) {
    for (uint32_t i = 0; i < BS; i += 8) {
      uint64_t x = next ();
      memcpy (p + i, &x, 8);
    }
  }
  else {
    uint32_t n = (uint32_t) snprintf ((char *) p, BS, "block %llu version %u\n",
                                      (unsigned long long) b, v);
    while (n < BS) {
      const char *w = words[next () % 16];
      size_t l = strlen (w);
      if (n + l + 1 > BS)
        break;
      memcpy (p + n, w, l);
      n += (uint32_t) l;
      p[n++] = next () % 8 ? ' ' : '\n';
    }
    memset (p + n, '.', BS - n);
  }
  rng = save;
}

static int
put (struct store *s, uint64_t b, unsigned v)
{
  static uint8_t buf[BS];
  fill (buf, b, v);
  struct iovec iov = { buf, BS };
  return store_pwrite (s, &iov, 1, b * BS, 0);
}

static void
check (struct store *s, uint64_t b, unsigned v)
{
  static uint8_t want[BS], got[BS];
  fill (want, b, v);
  struct iovec iov = { got, BS };
  assert_int_equal (store_pread (s, &iov, 1, b * BS), 0);
  if (memcmp (want, got, BS) != 0)
    fail_msg ("block %llu does not read back as version %u", (unsigned long long) b, v);
}

static struct cache_stats
stats (struct store *s)
{
  struct cache_stats st;
  assert_int_equal (cache_get_stats (s, &st), 0);
  return st;
}

/* ---- recompression ---- */

static void
idle_blocks_are_recompressed_and_rewrites_return_to_the_fast_path (void **state)
{
  (void) state;
  const uint64_t n = 2048;                              /* 8 MiB */
  struct cache_config cc = { .size = n * BS, .recompress_idle = 3600 };
  struct store *s = cache_create (&cc);
  assert_non_null (s);
  struct cache *k = cache_of (s);

  for (uint64_t b = 0; b < n; b++)
    assert_int_equal (put (s, b, 1), 0);
  struct cache_stats before = stats (s);

  /* Nothing is idle for an hour yet: a pass that wants that does nothing. */
  assert_int_equal (cache_recompress (s, 3600), 0);
  assert_int_equal (stats (s).hc_blocks, 0);

  uint64_t made = cache_recompress (s, 0);
  struct cache_stats after = stats (s);
  printf ("compressed %llu -> %llu bytes, memory %llu -> %llu, %llu blocks in LZ4HC\n",
          (unsigned long long) before.compr_bytes, (unsigned long long) after.compr_bytes,
          (unsigned long long) before.mem_used, (unsigned long long) after.mem_used,
          (unsigned long long) after.hc_blocks);
  assert_true (made > n / 2);
  assert_int_equal (after.hc_blocks, made);
  assert_true (after.compr_bytes < before.compr_bytes * 9 / 10);
  assert_true (after.mem_used < before.mem_used);
  assert_true (after.recomp_saved == before.compr_bytes - after.compr_bytes);
  for (uint64_t b = 0; b < n; b++)
    check (s, b, 1);

  /* A rewrite takes a block off LZ4HC; a second pass finds only it. */
  uint64_t hc = after.hc_blocks;
  for (uint64_t b = 0; b < 64; b++)
    assert_int_equal (put (s, b, 2), 0);
  uint64_t rewritten_hc = 64 - 64 / 8;                  /* the random ones never were */
  assert_int_equal (stats (s).hc_blocks, hc - rewritten_hc);
  assert_int_equal (k->meta[0].flags & CM_HC, 0);
  assert_int_equal (cache_recompress (s, 0), rewritten_hc);
  for (uint64_t b = 0; b < n; b++)
    check (s, b, b < 64 ? 2 : 1);

  /* A damaged HC object is an error, never data. */
  assert_true (k->meta[1].flags & CM_HC);
  uint8_t *obj = zpool_map (k->zp, k->meta[1].handle);
  uint8_t saved = obj[0];
  obj[0] ^= 0xff;
  obj[1] ^= 0xff;
  uint8_t buf[BS];
  struct iovec iov = { buf, BS };
  errno = 0;
  int r = store_pread (s, &iov, 1, 1 * BS);
  if (r == 0) {                        /* a damage lz4 could not see: the bytes must differ */
    uint8_t want[BS];
    fill (want, 1, 2);
    assert_true (memcmp (want, buf, BS) != 0);
  }
  else
    assert_int_equal (errno, EIO);
  obj[0] = saved;
  assert_int_equal (put (s, 1, 3), 0);  /* a rewrite heals it */
  check (s, 1, 3);

  /* Every HC block rewritten: the next pass samples a new dictionary. */
  for (uint64_t b = 0; b < n; b++)
    assert_int_equal (put (s, b, 4), 0);
  assert_int_equal (stats (s).hc_blocks, 0);
  assert_true (cache_recompress (s, 0) > n / 2);
  for (uint64_t b = 0; b < n; b++)
    check (s, b, 4);
  /* Trims drop HC blocks too. */
  assert_int_equal (store_trim (s, 0, n * BS), 0);
  assert_int_equal (stats (s).hc_blocks, 0);
  assert_int_equal (stats (s).orig_bytes, 0);
  store_close (s);
}

/* ---- spill ---- */

static char dir[] = "/tmp/test-cache-spill.XXXXXX";

static const char *
spill_path (void)
{
  static char p[64];
  snprintf (p, sizeof p, "%s/spill", dir);
  return p;
}

static struct store *
spill_disk (uint64_t nblocks, uint64_t limit)
{
  struct cache_config cc = { .size = nblocks * BS, .mem_limit = limit,
                             .spill_path = spill_path (), .recompress_idle = 3600 };
  struct store *s = cache_create (&cc);
  assert_non_null (s);
  return s;
}

static void
a_spill_file_holds_cold_blocks_and_reads_them_back (void **state)
{
  (void) state;
  const uint64_t n = 4096;                              /* 16 MiB */
  const uint64_t limit = 2 << 20;
  struct store *s = spill_disk (n, limit);

  /* Under the watermark: the file gets nothing. */
  for (uint64_t b = 0; b < 128; b++)
    assert_int_equal (put (s, b, 1), 0);
  sleep (2);                                            /* the spiller looks every second */
  assert_int_equal (stats (s).bd_writes, 0);

  /* Far past it: writers wait for the spiller, nothing fails. */
  for (uint64_t b = 0; b < n; b++)
    assert_int_equal (put (s, b, 1), 0);
  struct cache_stats st = stats (s);
  printf ("%llu blocks spilled (%llu written), %llu writer waits, memory %llu of %llu\n",
          (unsigned long long) st.spilled_blocks, (unsigned long long) st.bd_writes,
          (unsigned long long) st.spill_waits, (unsigned long long) st.mem_used,
          (unsigned long long) st.mem_limit);
  assert_true (st.spilled_blocks > 0);
  assert_true (st.bd_writes >= st.spilled_blocks);
  assert_int_equal (st.bd_errors, 0);
  assert_true (zpool_mem_in_use (cache_of (s)->zp) <= limit);

  /* Incompressible blocks went first: all of them are out. */
  struct cache *k = cache_of (s);
  uint64_t raw_in_memory = 0, raw = 0;
  for (uint64_t b = 7; b < n; b += 8) {
    raw++;
    raw_in_memory += cache_has_object (&k->meta[b]);
  }
  printf ("incompressible blocks still in memory: %llu of %llu\n",
          (unsigned long long) raw_in_memory, (unsigned long long) raw);
  assert_true (raw_in_memory < raw / 4);

  for (uint64_t b = 0; b < n; b++)
    check (s, b, 1);
  assert_true (stats (s).bd_reads > 0);

  /* Spilled blocks rewritten or trimmed give their slots back. */
  assert_int_equal (cache_spill (s, 0) >= 0, 1);
  uint64_t out = stats (s).spilled_blocks;
  assert_true (out > n / 2);
  for (uint64_t b = 0; b < 256; b++)
    assert_int_equal (put (s, b, 2), 0);
  assert_int_equal (store_trim (s, 256 * BS, 256 * BS), 0);
  st = stats (s);
  assert_true (st.spilled_blocks <= out - 400);
  uint64_t zero[BS / 8];
  struct iovec iov = { zero, BS };
  for (uint64_t b = 0; b < n; b++) {
    if (b < 256 || b >= 512) {
      check (s, b, b < 256 ? 2 : 1);
      continue;
    }
    assert_int_equal (store_pread (s, &iov, 1, b * BS), 0);
    for (unsigned i = 0; i < BS / 8; i++)
      assert_int_equal (zero[i], 0);
  }

  /* The file is another daemon's while this one has it. */
  struct cache_config cc = { .size = n * BS, .mem_limit = limit, .spill_path = spill_path () };
  errno = 0;
  assert_null (cache_create (&cc));
  assert_int_equal (errno, EBUSY);

  store_close (s);
  struct stat sb;
  assert_int_equal (stat (spill_path (), &sb), 0);
  assert_int_equal (sb.st_size, 4096);                  /* emptied to its header */

  /* A spill file can be used again; a file that is not one is refused. */
  s = spill_disk (n, limit);
  store_close (s);
  int fd = open (spill_path (), O_WRONLY | O_TRUNC);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, "somebody's data\n", 16), 16);
  close (fd);
  errno = 0;
  assert_null (cache_create (&cc));
  assert_int_equal (errno, EEXIST);
  assert_int_equal (stat (spill_path (), &sb), 0);
  assert_int_equal (sb.st_size, 16);                    /* untouched */
  unlink (spill_path ());
}

static void
a_spill_file_that_cannot_be_written_loses_nothing (void **state)
{
  (void) state;
  const uint64_t n = 2048;
  const uint64_t limit = 1 << 20;
  struct rlimit old, small = { 256 << 10, 256 << 10 };

  /* The file may not grow past 256 KiB: spilling fails with EFBIG soon. */
  signal (SIGXFSZ, SIG_IGN);
  assert_int_equal (getrlimit (RLIMIT_FSIZE, &old), 0);
  small.rlim_max = old.rlim_max;
  assert_int_equal (setrlimit (RLIMIT_FSIZE, &small), 0);
  struct store *s = spill_disk (n, limit);
  uint64_t written = 0;
  int e = 0;
  for (uint64_t b = 0; b < n; b++) {
    if (put (s, b, 1) == -1) {
      e = errno;
      break;
    }
    written++;
  }
  struct cache_stats st = stats (s);
  printf ("%llu blocks written before %s; %llu spilled, %llu spill errors\n",
          (unsigned long long) written, e ? strerror (e) : "the end",
          (unsigned long long) st.spilled_blocks, (unsigned long long) st.bd_errors);
  assert_int_equal (e, ENOSPC);
  assert_true (st.bd_errors > 0);
  assert_true (written > 0);
  for (uint64_t b = 0; b < written; b++)
    check (s, b, 1);
  store_close (s);
  assert_int_equal (setrlimit (RLIMIT_FSIZE, &old), 0);
  unlink (spill_path ());
}

static int
setup (void **state)
{
  (void) state;
  return mkdtemp (dir) ? 0 : -1;
}

static int
teardown (void **state)
{
  (void) state;
  unlink (spill_path ());
  return rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (idle_blocks_are_recompressed_and_rewrites_return_to_the_fast_path),
    cmocka_unit_test (a_spill_file_holds_cold_blocks_and_reads_them_back),
    cmocka_unit_test (a_spill_file_that_cannot_be_written_loses_nothing),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
