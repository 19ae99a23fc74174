/* The SCSI core over the fault store: each failure of the store below
 * gets the sense of the table in docs/architecture.md and the errno a
 * front-end reports, the fault store's windows and rates fail exactly the
 * calls they name, and a write-back that fails (EIO or ENOSPC) keeps its
 * blocks dirty and fails SYNCHRONIZE CACHE until the store recovers. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include "scsi-test-helpers.h"

#define MiB (1024 * 1024)

static struct unit *
faulty_memdisk (const char *spec)
{
  struct store *s = store_fault_open (memdisk_new (MiB), spec);
  assert_non_null (s);
  return unit_new (s, 512, false, false);
}

static int
read_block (struct unit *u, uint64_t lba, uint8_t *buf)
{
  uint8_t cdb[16];
  scsi_cdb_read16 (cdb, lba, 1, false);
  return exec_cdb (u, cdb, 16, NULL, buf, 512);
}

static int
write_block (struct unit *u, uint64_t lba, uint8_t fill)
{
  uint8_t cdb[16], buf[512];
  memset (buf, fill, sizeof buf);
  scsi_cdb_write16 (cdb, lba, 1, false);
  return exec_cdb (u, cdb, 16, buf, NULL, sizeof buf);
}

static int
sync_cache (struct unit *u)
{
  uint8_t cdb[16];
  scsi_cdb_sync_cache16 (cdb, 0, 0);
  return exec_cdb (u, cdb, 16, NULL, NULL, 0);
}

static void
read_fault_is_3_11_00_eio (void **state)
{
  struct unit *u = faulty_memdisk ("read:after=1:count=1");
  uint8_t buf[512];

  assert_int_equal (read_block (u, 0, buf), SCSI_STATUS_GOOD);
  read_block (u, 0, buf);
  assert_sense (u, 3, 0x11, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  assert_int_equal (read_block (u, 0, buf), SCSI_STATUS_GOOD);
  assert_int_equal (store_fault_injected (u->store), 1);
  unit_free (u);
}

static void
write_fault_is_3_0c_00_eio_and_writes_outside_the_window_land (void **state)
{
  struct unit *u = faulty_memdisk ("write:after=2:count=2");
  uint8_t buf[512];

  for (unsigned i = 0; i < 6; i++) {
    write_block (u, i, (uint8_t) (0x10 + i));
    if (i == 2 || i == 3) {
      assert_sense (u, 3, 0x0c, 0x00);
      assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
    }
    else
      assert_good (u);
  }
  for (unsigned i = 0; i < 6; i++) {
    assert_int_equal (read_block (u, i, buf), SCSI_STATUS_GOOD);
    /* A failed write changed nothing: its blocks still read zero. */
    assert_int_equal (buf[0], i == 2 || i == 3 ? 0 : 0x10 + i);
    assert_int_equal (buf[511], buf[0]);
  }
  unit_free (u);
}

/* SBC gives SYNCHRONIZE CACHE no sense of its own: a cache that cannot
 * reach the medium is a write that failed there, MEDIUM ERROR / WRITE
 * ERROR; a full store is SPACE ALLOCATION FAILED; anything a medium would
 * not say is INTERNAL TARGET FAILURE. */
static void
flush_faults_are_3_0c_00_7_27_07_or_4_44_00 (void **state)
{
  struct unit *u = faulty_memdisk ("flush:count=1,flush:after=1:count=1:errno=ENOSPC,"
                                   "flush:after=2:count=1:errno=EBADF,"
                                   "flush:after=3:count=1:errno=EROFS");
  sync_cache (u);
  assert_sense (u, 3, 0x0c, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  sync_cache (u);
  assert_sense (u, 7, 0x27, 0x07);
  assert_int_equal (scsi_cmd_errno (&u->cmd), ENOSPC);
  sync_cache (u);
  assert_sense (u, 4, 0x44, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  sync_cache (u);
  assert_sense (u, 3, 0x0c, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  assert_int_equal (sync_cache (u), SCSI_STATUS_GOOD);
  unit_free (u);
}

/* The core answers WRITE PROTECTED itself, before the store, for a unit
 * that is read-only: EROFS (or EPERM) from below means the file's
 * filesystem failed under a writable unit.  Reported as write protection
 * it would tell an NBD client the export is read-only. */
static void
erofs_from_the_store_is_a_write_error_not_write_protect (void **state)
{
  struct unit *u = faulty_memdisk ("write:errno=EROFS,zero:errno=EPERM,trim:errno=EROFS");
  uint8_t cdb[16];

  write_block (u, 0, 1);
  assert_sense (u, 3, 0x0c, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  scsi_cdb_write_same16 (cdb, 0, 8, false, true);
  exec_cdb (u, cdb, 16, NULL, NULL, 0);
  assert_sense (u, 3, 0x0c, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  /* The unit counts each such failure for the daemon's report. */
  struct scsi_lu_stats st;
  scsi_lu_get_stats (u->lu, &st);
  assert_int_equal (st.store_errors, 2);
  assert_int_equal (st.last_store_errno, EPERM);
  unit_free (u);
}

static void
unknown_errno_is_4_44_00_eio (void **state)
{
  struct unit *u = faulty_memdisk ("read:errno=EBADF");
  uint8_t buf[512];

  read_block (u, 0, buf);
  assert_sense (u, 4, 0x44, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  unit_free (u);
}

static void
a_rate_fails_some_calls_the_same_ones_each_run (void **state)
{
  bool first[200];
  unsigned failed = 0;

  for (int run = 0; run < 2; run++) {
    struct unit *u = faulty_memdisk ("read:rate=0.25:seed=7");
    uint8_t buf[512];
    for (unsigned i = 0; i < 200; i++) {
      bool bad = read_block (u, i, buf) != SCSI_STATUS_GOOD;
      if (run == 0) {
        first[i] = bad;
        failed += bad;
      }
      else
        assert_int_equal (bad, first[i]);
    }
    unit_free (u);
  }
  assert_in_range (failed, 25, 75);
  /* Rate 0 never fails; rate 1 always does. */
  struct unit *u = faulty_memdisk ("read:rate=0,write:rate=1");
  uint8_t buf[512];
  assert_int_equal (read_block (u, 0, buf), SCSI_STATUS_GOOD);
  assert_int_not_equal (write_block (u, 0, 1), SCSI_STATUS_GOOD);
  unit_free (u);
}

static void
bad_specs_are_refused (void **state)
{
  static const char *const bad[] = {
    "", ",", "write:", "write:after", "write:after=", "write:after=-1",
    "write:after=1x", "read:rate=2", "read:rate=x", "read:errno=EFOO",
    "read:errno=0", "fsync", "read:bogus=1",
    "read,read,read,read,read,read,read,read,read",
  };
  struct store *mem = memdisk_new (MiB);

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    assert_null (store_fault_open (mem, bad[i]));
    assert_int_equal (errno, EINVAL);
  }
  assert_int_equal (store_fault_injected (mem), 0);
  store_close (mem);
}

/* A write-back cache over a failing store: the write itself lands in the
 * cache; write-back fails, the blocks stay dirty and SYNCHRONIZE CACHE
 * fails with the store's error; once the window is over the next one
 * writes them back. */
static void
failed_write_back_keeps_the_data_dirty_and_fails_the_flush (int err, uint8_t key,
                                                           uint8_t asc, uint8_t ascq)
{
  struct fake_store *back = fake_store_new (MiB, true);
  char spec[64];
  snprintf (spec, sizeof spec, "write:count=2:errno=%d", err);
  struct store *faulty = store_fault_open (&back->s, spec);
  assert_non_null (faulty);
  struct cache_config cc = { .backing = faulty, .defer_threads = true };
  struct store *cache = cache_create (&cc);
  assert_non_null (cache);
  struct unit *u = unit_new (cache, 512, false, true);
  struct cache_stats cs;

  assert_int_equal (write_block (u, 9, 0xab), SCSI_STATUS_GOOD);
  for (int i = 0; i < 2; i++) {
    sync_cache (u);
    assert_sense (u, key, asc, ascq);
    assert_int_equal (back->data[9 * 512], 0);
    assert_int_equal (cache_get_stats (cache, &cs), 0);
    assert_int_equal (cs.dirty_blocks, 1);
  }
  assert_int_equal (sync_cache (u), SCSI_STATUS_GOOD);
  assert_int_equal (back->data[9 * 512], 0xab);
  assert_int_equal (back->data[10 * 512 - 1], 0xab);
  assert_int_equal (cache_get_stats (cache, &cs), 0);
  assert_int_equal (cs.dirty_blocks, 0);
  unit_free (u);
}

static void
write_back_eio_keeps_the_data_and_fails_the_flush_3_0c_00 (void **state)
{
  failed_write_back_keeps_the_data_dirty_and_fails_the_flush (EIO, 3, 0x0c, 0x00);
}

static void
write_back_enospc_keeps_the_data_and_fails_the_flush_7_27_07 (void **state)
{
  failed_write_back_keeps_the_data_dirty_and_fails_the_flush (ENOSPC, 7, 0x27, 0x07);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (read_fault_is_3_11_00_eio),
    cmocka_unit_test (write_fault_is_3_0c_00_eio_and_writes_outside_the_window_land),
    cmocka_unit_test (flush_faults_are_3_0c_00_7_27_07_or_4_44_00),
    cmocka_unit_test (erofs_from_the_store_is_a_write_error_not_write_protect),
    cmocka_unit_test (unknown_errno_is_4_44_00_eio),
    cmocka_unit_test (a_rate_fails_some_calls_the_same_ones_each_run),
    cmocka_unit_test (bad_specs_are_refused),
    cmocka_unit_test (write_back_eio_keeps_the_data_and_fails_the_flush_3_0c_00),
    cmocka_unit_test (write_back_enospc_keeps_the_data_and_fails_the_flush_7_27_07),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
