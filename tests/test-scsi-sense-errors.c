/* Every row of the sense table in docs/architecture.md, with the exact
 * sense bytes an initiator receives and the errno a front-end reports
 * for it; fixed versus descriptor format. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "scsi-test-helpers.h"

#define MiB (1024 * 1024)

static struct fake_store *f;
static struct unit *u;

static int
setup (void **state)
{
  f = fake_store_new (MiB, true);
  u = unit_new (&f->s, 512, false, false);
  return 0;
}

static int
teardown (void **state)
{
  unit_free (u);
  return 0;
}

/* Fixed format: 0x70, key at 2, ASC/ASCQ at 12/13, additional length 10. */
static void
assert_fixed (uint8_t key, uint8_t asc, uint8_t ascq)
{
  const uint8_t *s = u->cmd.sense;
  assert_int_equal (u->cmd.status, SCSI_STATUS_CHECK_CONDITION);
  assert_int_equal (u->cmd.sense_len, 18);
  assert_int_equal (s[0] & 0x7f, 0x70);
  assert_int_equal (s[2], key);
  assert_int_equal (s[7], 10);
  assert_int_equal (s[12], asc);
  assert_int_equal (s[13], ascq);
}

static void
invalid_opcode_is_5_20_00_einval (void **state)
{
  uint8_t cdb[6] = { 0x02 };           /* not a command of a disk */
  exec_cdb (u, cdb, 6, NULL, NULL, 0);
  assert_fixed (5, 0x20, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EINVAL);
}

static void
invalid_field_is_5_24_00_with_a_field_pointer (void **state)
{
  uint8_t cdb[6] = { SCSI_OP_INQUIRY, 0, 0x80, 0, 96, 0 };   /* page without EVPD */
  exec_cdb (u, cdb, 6, NULL, NULL, 96);
  assert_fixed (5, 0x24, 0x00);
  assert_int_equal (u->cmd.sense[15], 0x80 | 0x40);          /* SKSV, C/D */
  assert_int_equal (u->cmd.sense[16] << 8 | u->cmd.sense[17], 2);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EINVAL);
  struct scsi_sense_info si;
  assert_int_equal (scsi_sense_decode (u->cmd.sense, u->cmd.sense_len, &si), 0);
  assert_true (si.sksv);
  assert_true (si.field_in_cdb);
  assert_int_equal (si.field, 2);
}

static void
lba_out_of_range_is_5_21_00_enospc_for_writes_einval_for_reads (void **state)
{
  uint8_t cdb[16], buf[1024] = { 0 };
  uint64_t last = MiB / 512 - 1;

  scsi_cdb_write16 (cdb, last, 2, false);              /* straddles the end */
  exec_cdb (u, cdb, 16, buf, NULL, sizeof buf);
  assert_fixed (5, 0x21, 0x00);
  assert_int_equal (u->cmd.sense[0], 0xf0);             /* VALID: INFORMATION set */
  assert_int_equal (be_get32 (u->cmd.sense + 3), last);
  assert_int_equal (scsi_cmd_errno (&u->cmd), ENOSPC);
  scsi_cdb_read16 (cdb, last + 1, 1, false);
  exec_cdb (u, cdb, 16, NULL, buf, 512);
  assert_fixed (5, 0x21, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EINVAL);
  /* The overflow of lba + n is out of range, not a wrap. */
  scsi_cdb_read16 (cdb, UINT64_MAX, 2, false);
  exec_cdb (u, cdb, 16, NULL, buf, 1024);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EINVAL);
  scsi_cdb_write_same16 (cdb, last, 5, false, true);
  exec_cdb (u, cdb, 16, NULL, NULL, 0);
  assert_int_equal (scsi_cmd_errno (&u->cmd), ENOSPC);
}

static void
parameter_list_length_error_is_5_1a_00 (void **state)
{
  uint8_t cdb[10] = { SCSI_OP_UNMAP }, param[24] = { 0 };
  be_put16 (cdb + 7, 4);                                   /* shorter than a header */
  exec_cdb (u, cdb, 10, param, NULL, 4);
  assert_fixed (5, 0x1a, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EINVAL);
  /* Descriptor length longer than the list. */
  be_put16 (cdb + 7, 24);
  be_put16 (param, 22);
  be_put16 (param + 2, 32);
  exec_cdb (u, cdb, 10, param, NULL, 24);
  assert_fixed (5, 0x1a, 0x00);
}

static void
write_protected_is_7_27_00_eperm (void **state)
{
  struct unit *ro = unit_new (memdisk_new (MiB), 512, true, false);
  uint8_t cdb[16], buf[512] = { 0 };

  scsi_cdb_write16 (cdb, 0, 1, false);
  exec_cdb (ro, cdb, 16, buf, NULL, sizeof buf);
  assert_int_equal (ro->cmd.sense[2], 7);
  assert_int_equal (ro->cmd.sense[12], 0x27);
  assert_int_equal (ro->cmd.sense[13], 0x00);
  assert_int_equal (scsi_cmd_errno (&ro->cmd), EPERM);
  scsi_cdb_write_same16 (cdb, 0, 1, true, true);
  exec_cdb (ro, cdb, 16, NULL, NULL, 0);
  assert_int_equal (scsi_cmd_errno (&ro->cmd), EPERM);
  unit_free (ro);
}

static void
unrecovered_read_error_is_3_11_00_eio (void **state)
{
  uint8_t cdb[16], buf[512];
  f->fail_pread = EIO;
  scsi_cdb_read16 (cdb, 0, 1, false);
  exec_cdb (u, cdb, 16, NULL, buf, sizeof buf);
  assert_fixed (3, 0x11, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
}

static void
write_error_is_3_0c_00_eio (void **state)
{
  uint8_t cdb[16], buf[512] = { 0 };
  f->fail_pwrite = EIO;
  scsi_cdb_write16 (cdb, 0, 1, false);
  exec_cdb (u, cdb, 16, buf, NULL, sizeof buf);
  assert_fixed (3, 0x0c, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  f->fail_flush = EIO;                               /* a failed flush too */
  scsi_cdb_sync_cache16 (cdb, 0, 0);
  exec_cdb (u, cdb, 16, NULL, NULL, 0);
  assert_fixed (3, 0x0c, 0x00);
}

static void
miscompare_is_e_1d_00_with_the_offset_eio (void **state)
{
  uint8_t cdb[16] = { SCSI_OP_COMPARE_AND_WRITE }, buf[1024];
  memset (buf, 0, sizeof buf);
  buf[300] = 1;                                      /* the medium holds zeroes */
  be_put64 (cdb + 2, 5);
  cdb[13] = 1;
  exec_cdb (u, cdb, 16, buf, NULL, sizeof buf);
  assert_fixed (0x0e, 0x1d, 0x00);
  assert_int_equal (u->cmd.sense[0], 0xf0);
  assert_int_equal (be_get32 (u->cmd.sense + 3), 300);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
}

static void
not_ready_while_stopping_is_2_04_12_eshutdown (void **state)
{
  uint8_t cdb[16], buf[512];
  uint8_t inq[6] = { SCSI_OP_INQUIRY, 0, 0, 0, 36, 0 };
  scsi_lu_set_stopping (u->lu, true);
  scsi_cdb_read16 (cdb, 0, 1, false);
  exec_cdb (u, cdb, 16, NULL, buf, sizeof buf);
  assert_fixed (2, 0x04, 0x12);
  assert_int_equal (scsi_cmd_errno (&u->cmd), ESHUTDOWN);
  exec_cdb (u, inq, 6, NULL, buf, 36);              /* INQUIRY still answers */
  assert_good (u);
  scsi_lu_set_stopping (u->lu, false);
  exec_cdb (u, cdb, 16, NULL, buf, sizeof buf);
  assert_good (u);
  /* Another NOT READY reason maps to EIO. */
  scsi_set_sense (&u->cmd, false, SCSI_SK_NOT_READY, 0x04, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
}

static void
internal_target_failure_is_4_44_00_eio (void **state)
{
  uint8_t cdb[16], buf[512];
  f->fail_pread = EBADF;                            /* nothing a disk would say */
  scsi_cdb_read16 (cdb, 0, 1, false);
  exec_cdb (u, cdb, 16, NULL, buf, sizeof buf);
  assert_fixed (4, 0x44, 0x00);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
}

static void
space_allocation_failed_is_7_27_07_enospc (void **state)
{
  uint8_t cdb[16], buf[512] = { 0 };
  f->fail_pwrite = ENOSPC;
  scsi_cdb_write16 (cdb, 0, 1, false);
  exec_cdb (u, cdb, 16, buf, NULL, sizeof buf);
  assert_fixed (7, 0x27, 0x07);
  assert_int_equal (scsi_cmd_errno (&u->cmd), ENOSPC);
}

static void
aborted_command_maps_to_eio_and_good_to_0 (void **state)
{
  u->cmd.sense = u->sense;
  scsi_set_sense (&u->cmd, false, SCSI_SK_ABORTED_COMMAND, 0, 0);
  assert_int_equal (scsi_cmd_errno (&u->cmd), EIO);
  u->cmd.status = SCSI_STATUS_GOOD;
  assert_int_equal (scsi_cmd_errno (&u->cmd), 0);
}

static void
lba_beyond_32_bits_is_reported_in_descriptor_format (void **state)
{
  struct fake_store *big = fake_store_new (4ull << 40, false);
  struct unit *b = unit_new (&big->s, 512, false, false);
  uint8_t cdb[16], buf[512];
  uint64_t lba = (4ull << 40) / 512;                 /* one past the end, > 2^32 */

  scsi_cdb_read16 (cdb, lba, 1, false);
  exec_cdb (b, cdb, 16, NULL, buf, sizeof buf);
  const uint8_t *s = b->cmd.sense;
  assert_int_equal (s[0], 0x72);
  assert_int_equal (s[1], 5);
  assert_int_equal (s[2], 0x21);
  assert_int_equal (s[3], 0x00);
  assert_int_equal (s[7], 12);                        /* one information descriptor */
  assert_int_equal (s[8], 0x00);
  assert_int_equal (s[9], 0x0a);
  assert_int_equal (s[10], 0x80);
  assert_int_equal (be_get64 (s + 12), lba);
  struct scsi_sense_info si;
  assert_int_equal (scsi_sense_decode (s, b->cmd.sense_len, &si), 0);
  assert_int_equal (si.response_code, 0x72);
  assert_true (si.info_valid);
  assert_int_equal (si.info, lba);
  assert_int_equal (scsi_cmd_errno (&b->cmd), EINVAL);
  /* A small LBA on the same unit stays fixed format. */
  scsi_cdb_read16 (cdb, 1, 1, false);
  f->fail_pread = 0;
  exec_cdb (b, cdb, 16, NULL, buf, sizeof buf);
  assert_good (b);
  unit_free (b);
}

static void
d_sense_switches_every_error_to_descriptor_format (void **state)
{
  uint8_t cdb[6] = { SCSI_OP_INQUIRY, 0, 0x80, 0, 96, 0 };
  uint8_t ms[6] = { SCSI_OP_MODE_SENSE_6, 0x08, 0x0a, 0, 64, 0 }, d[64];

  scsi_lu_set_descriptor_sense (u->lu, true);
  exec_cdb (u, cdb, 6, NULL, NULL, 96);
  const uint8_t *s = u->cmd.sense;
  assert_int_equal (s[0], 0x72);
  assert_int_equal (s[1], 5);
  assert_int_equal (s[2], 0x24);
  assert_int_equal (s[7], 8);                         /* sense-key specific descriptor */
  assert_int_equal (s[8], 0x02);
  assert_int_equal (s[12], 0x80 | 0x40);
  assert_int_equal (s[13] << 8 | s[14], 2);
  /* The control mode page shows D_SENSE. */
  exec_cdb (u, ms, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[4], 0x0a);
  assert_int_equal (d[6] & 0x04, 0x04);
  scsi_lu_set_descriptor_sense (u->lu, false);
  exec_cdb (u, cdb, 6, NULL, NULL, 96);
  assert_int_equal (u->cmd.sense[0], 0x70);
}

static void
decode_rejects_what_is_not_sense_data (void **state)
{
  uint8_t junk[18] = { 0x12 };
  struct scsi_sense_info si;
  assert_int_equal (scsi_sense_decode (junk, sizeof junk, &si), -1);
  assert_int_equal (errno, EINVAL);
  assert_int_equal (scsi_sense_decode (junk, 3, &si), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (invalid_opcode_is_5_20_00_einval, setup, teardown),
    cmocka_unit_test_setup_teardown (invalid_field_is_5_24_00_with_a_field_pointer, setup, teardown),
    cmocka_unit_test_setup_teardown (lba_out_of_range_is_5_21_00_enospc_for_writes_einval_for_reads, setup, teardown),
    cmocka_unit_test_setup_teardown (parameter_list_length_error_is_5_1a_00, setup, teardown),
    cmocka_unit_test_setup_teardown (write_protected_is_7_27_00_eperm, setup, teardown),
    cmocka_unit_test_setup_teardown (unrecovered_read_error_is_3_11_00_eio, setup, teardown),
    cmocka_unit_test_setup_teardown (write_error_is_3_0c_00_eio, setup, teardown),
    cmocka_unit_test_setup_teardown (miscompare_is_e_1d_00_with_the_offset_eio, setup, teardown),
    cmocka_unit_test_setup_teardown (not_ready_while_stopping_is_2_04_12_eshutdown, setup, teardown),
    cmocka_unit_test_setup_teardown (internal_target_failure_is_4_44_00_eio, setup, teardown),
    cmocka_unit_test_setup_teardown (space_allocation_failed_is_7_27_07_enospc, setup, teardown),
    cmocka_unit_test_setup_teardown (aborted_command_maps_to_eio_and_good_to_0, setup, teardown),
    cmocka_unit_test_setup_teardown (lba_beyond_32_bits_is_reported_in_descriptor_format, setup, teardown),
    cmocka_unit_test_setup_teardown (d_sense_switches_every_error_to_descriptor_format, setup, teardown),
    cmocka_unit_test_setup_teardown (decode_rejects_what_is_not_sense_data, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
