/* Every command of the SCSI core on its good path, with the data checked:
 * what an initiator reads back, the parameter data fields it relies on,
 * and what reached the store. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "scsi-test-helpers.h"

#define MiB (1024 * 1024)

static struct unit *
mem_unit (uint32_t bs)
{
  return unit_new (memdisk_new (4 * MiB), bs, false, false);
}

static void
fill (uint8_t *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t) (seed * 31 + i * 7 + (i >> 9));
}

static void
write_then_read_back_with_every_read_and_write_cdb (void **state)
{
  for (uint32_t bs = 512; bs <= 4096; bs *= 8) {
    struct unit *u = mem_unit (bs);
    uint8_t w[8 * 4096], r[8 * 4096], cdb[16];
    /* {write op, read op, cdb length} */
    static const uint8_t ops[][3] = {
      { SCSI_OP_WRITE_6, SCSI_OP_READ_6, 6 }, { SCSI_OP_WRITE_10, SCSI_OP_READ_10, 10 },
      { SCSI_OP_WRITE_12, SCSI_OP_READ_12, 12 }, { SCSI_OP_WRITE_16, SCSI_OP_READ_16, 16 },
    };
    for (unsigned k = 0; k < 4; k++) {
      uint32_t lba = 3 + 20 * k, n = 5;
      size_t len = n * bs;
      fill (w, len, k + bs);
      for (int dir = 0; dir < 2; dir++) {
        memset (cdb, 0, sizeof cdb);
        cdb[0] = ops[k][dir];
        switch (ops[k][2]) {
        case 6:  cdb[2] = (uint8_t) (lba >> 8); cdb[3] = (uint8_t) lba; cdb[4] = (uint8_t) n; break;
        case 10: be_put32 (cdb + 2, lba); be_put16 (cdb + 7, (uint16_t) n); break;
        case 12: be_put32 (cdb + 2, lba); be_put32 (cdb + 6, n); break;
        default: be_put64 (cdb + 2, lba); be_put32 (cdb + 10, n); break;
        }
        if (dir == 0)
          exec_cdb (u, cdb, ops[k][2], w, NULL, len);
        else {
          memset (r, 0, sizeof r);
          exec_cdb (u, cdb, ops[k][2], NULL, r, len);
          assert_int_equal (u->cmd.xfer, len);
          assert_memory_equal (r, w, len);
        }
        assert_good (u);
      }
    }
    unit_free (u);
  }
}

static void
fua_write_reaches_the_store_as_fua (void **state)
{
  struct fake_store *f = fake_store_new (MiB, true);
  struct unit *u = unit_new (&f->s, 512, false, true);
  uint8_t cdb[16], buf[512];

  memset (buf, 0xab, sizeof buf);
  scsi_cdb_write16 (cdb, 7, 1, true);
  exec_cdb (u, cdb, 16, buf, NULL, sizeof buf);
  assert_good (u);
  assert_int_equal (f->fua_writes, 1);
  assert_int_equal (f->data[7 * 512], 0xab);
  unit_free (u);
}

static void
inquiry_standard_data_names_a_spc4_disk (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[6] = { SCSI_OP_INQUIRY, 0, 0, 0, 96, 0 }, d[96];

  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (u->cmd.xfer, 36);
  assert_int_equal (d[0], 0x00);          /* direct-access block device */
  assert_int_equal (d[2], 0x06);          /* SPC-4 */
  assert_int_equal (d[3] & 0x0f, 2);
  assert_int_equal (d[4], 31);
  assert_memory_equal (d + 8, "SGBLK   ", 8);
  /* A short allocation length truncates. */
  cdb[4] = 5;
  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_int_equal (u->cmd.xfer, 5);
  unit_free (u);
}

static void
inquiry_vpd_pages_describe_serial_ids_limits_and_provisioning (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[6] = { SCSI_OP_INQUIRY, 1, 0, 1, 0, 0 }, d[256];

  exec_cdb (u, cdb, 6, NULL, d, sizeof d);          /* 0x00 */
  assert_good (u);
  assert_int_equal (d[1], 0x00);
  assert_int_equal (d[3], 6);
  static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };
  assert_memory_equal (d + 4, pages, 6);

  cdb[2] = 0x80;
  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[3], 10);
  assert_memory_equal (d + 4, "SERIAL0123", 10);

  cdb[2] = 0x83;
  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[4] & 0x0f, 2);                /* ASCII */
  assert_int_equal (d[5] & 0x0f, 1);                /* T10 vendor ID */
  assert_memory_equal (d + 8, "SGBLK   SERIAL0123", 18);
  const uint8_t *naa = d + 4 + 4 + d[7];
  assert_int_equal (naa[1] & 0x0f, 3);              /* NAA */
  assert_int_equal (naa[4] >> 4, 3);                /* locally assigned */

  cdb[2] = 0xb0;
  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[3], 0x3c);
  assert_int_equal (d[4] & 1, 1);                   /* WSNZ */
  assert_int_equal (be_get32 (d + 8), 32 * MiB / 512); /* maximum transfer */
  assert_int_equal (be_get32 (d + 20), 0xffffffffu);   /* maximum unmap LBA count */
  assert_int_equal (be_get32 (d + 24), SCSI_MAX_UNMAP_DESCRIPTORS);

  cdb[2] = 0xb1;
  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[4] << 8 | d[5], 1);           /* non-rotating */

  cdb[2] = 0xb2;
  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[5] & 0xe0, 0xe0);             /* LBPU LBPWS LBPWS10 */
  assert_int_equal ((d[5] >> 2) & 7, 1);            /* LBPRZ */
  assert_int_equal (d[6] & 7, 2);                   /* thin */
  unit_free (u);
}

static void
mode_sense_caching_page_shows_wce_of_the_cache_mode (void **state)
{
  for (int wce = 0; wce < 2; wce++) {
    struct unit *u = unit_new (memdisk_new (MiB), 512, false, wce);
    uint8_t c6[6] = { SCSI_OP_MODE_SENSE_6, 0x08, 0x08, 0, 255, 0 }, d[255];
    exec_cdb (u, c6, 6, NULL, d, sizeof d);
    assert_good (u);
    assert_int_equal (d[0], 4 + 20 - 1);            /* DBD: no block descriptor */
    assert_int_equal (d[3], 0);
    assert_int_equal (d[4], 0x08);
    assert_int_equal (d[5], 0x12);
    assert_int_equal ((d[6] >> 2) & 1, wce);

    uint8_t c10[10] = { SCSI_OP_MODE_SENSE_10, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0 };
    exec_cdb (u, c10, 10, NULL, d, sizeof d);
    assert_good (u);
    assert_int_equal (d[0] << 8 | d[1], 8 + 8 + 20 + 12 - 2);
    assert_int_equal (d[7], 8);                     /* one block descriptor */
    assert_int_equal (be_get32 (d + 12), 512);
    assert_int_equal (d[16], 0x08);
    assert_int_equal ((d[18] >> 2) & 1, wce);
    assert_int_equal (d[36], 0x0a);                 /* control page follows */
    unit_free (u);
  }
}

static void
mode_sense_of_a_read_only_unit_sets_wp (void **state)
{
  struct unit *u = unit_new (memdisk_new (MiB), 512, true, false);
  uint8_t c6[6] = { SCSI_OP_MODE_SENSE_6, 0, 0x3f, 0, 255, 0 }, d[255];

  exec_cdb (u, c6, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[2] & 0x80, 0x80);
  unit_free (u);
}

static void
read_capacity_reports_last_lba_and_block_size (void **state)
{
  struct unit *u = mem_unit (4096);
  uint8_t c10[10] = { SCSI_OP_READ_CAPACITY_10 }, c16[16] = { SCSI_OP_SERVICE_ACTION_IN_16, 0x10 };
  uint8_t d[32];

  exec_cdb (u, c10, 10, NULL, d, 8);
  assert_good (u);
  assert_int_equal (be_get32 (d), 4 * MiB / 4096 - 1);
  assert_int_equal (be_get32 (d + 4), 4096);
  be_put32 (c16 + 10, 32);
  exec_cdb (u, c16, 16, NULL, d, 32);
  assert_good (u);
  assert_int_equal (be_get64 (d), 4 * MiB / 4096 - 1);
  assert_int_equal (be_get32 (d + 8), 4096);
  assert_int_equal (d[14] & 0xc0, 0xc0);            /* LBPME, LBPRZ */
  unit_free (u);
}

static void
read_capacity_10_of_a_huge_disk_says_use_16 (void **state)
{
  struct fake_store *f = fake_store_new (4ull << 40, false);     /* 4 TiB */
  struct unit *u = unit_new (&f->s, 512, false, false);
  uint8_t c10[10] = { SCSI_OP_READ_CAPACITY_10 }, c16[16] = { SCSI_OP_SERVICE_ACTION_IN_16, 0x10 };
  uint8_t d[32];

  exec_cdb (u, c10, 10, NULL, d, 8);
  assert_good (u);
  assert_int_equal (be_get32 (d), 0xffffffffu);
  be_put32 (c16 + 10, 32);
  exec_cdb (u, c16, 16, NULL, d, 32);
  assert_int_equal (be_get64 (d), (4ull << 40) / 512 - 1);
  unit_free (u);
}

static void
verify_compares_data_and_reports_the_first_miscompare (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[16], w[2048], x[2048];

  fill (w, sizeof w, 9);
  scsi_cdb_write16 (cdb, 10, 4, false);
  exec_cdb (u, cdb, 16, w, NULL, sizeof w);
  assert_good (u);
  memset (cdb, 0, 16);
  cdb[0] = SCSI_OP_VERIFY_16;
  be_put64 (cdb + 2, 10);
  be_put32 (cdb + 10, 4);
  exec_cdb (u, cdb, 16, NULL, NULL, 0);             /* BYTCHK 0: readable */
  assert_good (u);
  cdb[1] = 0x02;                                    /* BYTCHK 1 */
  exec_cdb (u, cdb, 16, w, NULL, sizeof w);
  assert_good (u);
  memcpy (x, w, sizeof x);
  x[1234] ^= 0xff;
  exec_cdb (u, cdb, 16, x, NULL, sizeof x);
  assert_sense (u, SCSI_SK_MISCOMPARE, 0x1d, 0x00);
  struct scsi_sense_info si;
  scsi_sense_decode (u->cmd.sense, u->cmd.sense_len, &si);
  assert_true (si.info_valid);
  assert_int_equal (si.info, 1234);
  /* VERIFY(10) as well. */
  uint8_t c10[10] = { SCSI_OP_VERIFY_10, 0x02 };
  be_put32 (c10 + 2, 10);
  be_put16 (c10 + 7, 4);
  exec_cdb (u, c10, 10, w, NULL, sizeof w);
  assert_good (u);
  unit_free (u);
}

static void
write_and_verify_writes_then_checks (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[16] = { SCSI_OP_WRITE_AND_VERIFY_16 }, w[1024], r[1024];

  fill (w, sizeof w, 4);
  be_put64 (cdb + 2, 100);
  be_put32 (cdb + 10, 2);
  exec_cdb (u, cdb, 16, w, NULL, sizeof w);
  assert_good (u);
  scsi_cdb_read16 (cdb, 100, 2, false);
  exec_cdb (u, cdb, 16, NULL, r, sizeof r);
  assert_memory_equal (r, w, sizeof w);
  unit_free (u);
}

static void
synchronize_cache_flushes_the_store (void **state)
{
  struct fake_store *f = fake_store_new (MiB, true);
  struct unit *u = unit_new (&f->s, 512, false, true);
  uint8_t cdb[16];
  uint8_t c10[10] = { SCSI_OP_SYNCHRONIZE_CACHE_10 };

  scsi_cdb_sync_cache16 (cdb, 0, 0);
  exec_cdb (u, cdb, 16, NULL, NULL, 0);
  assert_good (u);
  exec_cdb (u, c10, 10, NULL, NULL, 0);
  assert_good (u);
  assert_int_equal (f->flushes, 2);
  unit_free (u);
}

static void
write_same_replicates_a_pattern_or_zeroes_or_unmaps (void **state)
{
  struct fake_store *f = fake_store_new (4 * MiB, true);
  struct unit *u = unit_new (&f->s, 512, false, false);
  uint8_t cdb[16], blk[512];

  fill (blk, sizeof blk, 77);
  /* WRITE SAME(16) with a pattern over 3000 blocks (more than one chunk). */
  memset (cdb, 0, 16);
  cdb[0] = SCSI_OP_WRITE_SAME_16;
  be_put64 (cdb + 2, 8);
  be_put32 (cdb + 10, 3000);
  exec_cdb (u, cdb, 16, blk, NULL, sizeof blk);
  assert_good (u);
  for (unsigned i = 8; i < 3008; i++)
    assert_memory_equal (f->data + i * 512, blk, 512);
  assert_int_equal (f->data[3008 * 512], 0);
  /* NDOB: zeroes with no data-out buffer. */
  scsi_cdb_write_same16 (cdb, 8, 16, false, true);
  exec_cdb (u, cdb, 16, NULL, NULL, 0);
  assert_good (u);
  assert_int_equal (f->zeroes, 1);
  for (unsigned i = 8 * 512; i < 24 * 512; i++)
    assert_int_equal (f->data[i], 0);
  assert_memory_equal (f->data + 24 * 512, blk, 512);
  /* WRITE SAME(10) with UNMAP and a zero block. */
  uint8_t c10[10] = { SCSI_OP_WRITE_SAME_10, 0x08 };
  be_put32 (c10 + 2, 100);
  be_put16 (c10 + 7, 10);
  memset (blk, 0, sizeof blk);
  exec_cdb (u, c10, 10, blk, NULL, sizeof blk);
  assert_good (u);
  assert_int_equal (f->zeroes, 2);
  unit_free (u);
}

static void
unmap_with_two_descriptors_trims_both_ranges (void **state)
{
  struct unit *u = unit_new (memdisk_new (4 * MiB), 512, false, false);
  uint8_t cdb[16], param[40], w[64 * 512], r[64 * 512];
  uint64_t lbas[2] = { 0, 48 };
  uint32_t ns[2] = { 16, 8 }, plen;
  struct cache_stats before, after;

  fill (w, sizeof w, 5);
  scsi_cdb_write16 (cdb, 0, 64, false);
  exec_cdb (u, cdb, 16, w, NULL, sizeof w);
  assert_int_equal (cache_get_stats (u->store, &before), 0);
  unsigned l = scsi_cdb_unmap (cdb, param, lbas, ns, 2, &plen);
  assert_int_equal (plen, 40);
  exec_cdb (u, cdb, l, param, NULL, plen);
  assert_good (u);
  /* Both ranges are whole blocks of the map: it holds them no more. */
  assert_int_equal (cache_get_stats (u->store, &after), 0);
  assert_int_equal (after.orig_bytes, before.orig_bytes - (16 + 8) * 512);
  scsi_cdb_read16 (cdb, 0, 64, false);
  exec_cdb (u, cdb, 16, NULL, r, sizeof r);
  for (size_t i = 0; i < sizeof r; i++) {
    bool trimmed = i < 16 * 512 || (i >= 48 * 512 && i < 56 * 512);
    assert_int_equal (r[i], trimmed ? 0 : w[i]);
  }
  unit_free (u);
}

static void
compare_and_write_writes_only_on_a_match (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[16], old[1024], both[2048], r[1024];

  fill (old, sizeof old, 1);
  scsi_cdb_write16 (cdb, 40, 2, false);
  exec_cdb (u, cdb, 16, old, NULL, sizeof old);
  memcpy (both, old, 1024);
  fill (both + 1024, 1024, 2);
  memset (cdb, 0, 16);
  cdb[0] = SCSI_OP_COMPARE_AND_WRITE;
  be_put64 (cdb + 2, 40);
  cdb[13] = 2;
  exec_cdb (u, cdb, 16, both, NULL, sizeof both);
  assert_good (u);
  uint8_t rd[16];
  scsi_cdb_read16 (rd, 40, 2, false);
  exec_cdb (u, rd, 16, NULL, r, sizeof r);
  assert_memory_equal (r, both + 1024, 1024);
  /* Now the medium holds the new data: comparing with 'old' fails at 0
   * and leaves the data unchanged. */
  memcpy (both, old, 1024);
  fill (both + 1024, 1024, 3);
  exec_cdb (u, cdb, 16, both, NULL, sizeof both);
  assert_sense (u, SCSI_SK_MISCOMPARE, 0x1d, 0x00);
  exec_cdb (u, rd, 16, NULL, r, sizeof r);
  fill (old, sizeof old, 2);
  assert_memory_equal (r, old, 1024);
  unit_free (u);
}

static void
prefetch_test_unit_ready_and_start_stop_succeed (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[16];
  uint8_t tur[6] = { SCSI_OP_TEST_UNIT_READY }, ssu[6] = { SCSI_OP_START_STOP_UNIT, 0, 0, 0, 1, 0 };
  uint8_t p10[10] = { SCSI_OP_PRE_FETCH_10 };

  scsi_cdb_prefetch16 (cdb, 0, 100);
  exec_cdb (u, cdb, 16, NULL, NULL, 0);
  assert_good (u);
  be_put16 (p10 + 7, 8);
  exec_cdb (u, p10, 10, NULL, NULL, 0);
  assert_good (u);
  exec_cdb (u, tur, 6, NULL, NULL, 0);
  assert_good (u);
  exec_cdb (u, ssu, 6, NULL, NULL, 0);
  assert_good (u);
  unit_free (u);
}

static void
get_lba_status_tells_mapped_from_deallocated (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[16], w[8192], d[8 + 16 * 8];
  struct scsi_lba_status st[8];

  memset (w, 0x11, sizeof w);
  scsi_cdb_write16 (cdb, 16, 16, false);             /* bytes 8 KiB .. 16 KiB */
  exec_cdb (u, cdb, 16, w, NULL, sizeof w);
  scsi_cdb_get_lba_status (cdb, 0, sizeof d);
  exec_cdb (u, cdb, 16, NULL, d, sizeof d);
  assert_good (u);
  int n = scsi_decode_lba_status (d, u->cmd.xfer, st, 8);
  assert_int_equal (n, 3);
  assert_int_equal (st[0].lba, 0);   assert_int_equal (st[0].nblocks, 16); assert_int_equal (st[0].provisioning, 1);
  assert_int_equal (st[1].lba, 16);  assert_int_equal (st[1].nblocks, 16); assert_int_equal (st[1].provisioning, 0);
  assert_int_equal (st[2].lba, 32);  assert_int_equal (st[2].provisioning, 1);
  assert_int_equal (st[2].lba + st[2].nblocks, 4 * MiB / 512);
  unit_free (u);
}

static void
report_luns_lists_lun_0 (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[12] = { SCSI_OP_REPORT_LUNS }, d[16];

  be_put32 (cdb + 6, 16);
  exec_cdb (u, cdb, 12, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (be_get32 (d), 8);
  for (int i = 8; i < 16; i++)
    assert_int_equal (d[i], 0);
  unit_free (u);
}

static void
report_supported_operation_codes_lists_what_the_unit_runs (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[12] = { SCSI_OP_MAINTENANCE_IN, SCSI_MI_REPORT_SUPPORTED_OPS }, d[1024];

  be_put32 (cdb + 6, sizeof d);
  exec_cdb (u, cdb, 12, NULL, d, sizeof d);
  assert_good (u);
  uint32_t len = be_get32 (d);
  assert_true (len >= 8 * 25);
  bool read16 = false, gls = false;
  for (uint32_t p = 4; p < 4 + len; p += 8) {
    if (d[p] == SCSI_OP_READ_16 && (d[p + 6] << 8 | d[p + 7]) == 16) read16 = true;
    if (d[p] == SCSI_OP_SERVICE_ACTION_IN_16 && d[p + 3] == SCSI_SAI_GET_LBA_STATUS &&
        (d[p + 5] & 1)) gls = true;
  }
  assert_true (read16);
  assert_true (gls);
  /* One command: WRITE(10) is supported, opcode 0xff is not. */
  cdb[2] = 1;
  cdb[3] = SCSI_OP_WRITE_10;
  exec_cdb (u, cdb, 12, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[1] & 7, 3);
  assert_int_equal (d[2] << 8 | d[3], 10);
  assert_int_equal (d[4], SCSI_OP_WRITE_10);
  cdb[3] = 0xff;
  exec_cdb (u, cdb, 12, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[1] & 7, 1);
  unit_free (u);
}

static void
request_sense_reports_no_sense_in_the_asked_format (void **state)
{
  struct unit *u = mem_unit (512);
  uint8_t cdb[6] = { SCSI_OP_REQUEST_SENSE, 0, 0, 0, 96, 0 }, d[96];

  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[0] & 0x7f, 0x70);
  assert_int_equal (d[2] & 0x0f, 0);
  cdb[1] = 1;                                      /* DESC */
  exec_cdb (u, cdb, 6, NULL, d, sizeof d);
  assert_good (u);
  assert_int_equal (d[0], 0x72);
  assert_int_equal (d[1], 0);
  unit_free (u);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (write_then_read_back_with_every_read_and_write_cdb),
    cmocka_unit_test (fua_write_reaches_the_store_as_fua),
    cmocka_unit_test (inquiry_standard_data_names_a_spc4_disk),
    cmocka_unit_test (inquiry_vpd_pages_describe_serial_ids_limits_and_provisioning),
    cmocka_unit_test (mode_sense_caching_page_shows_wce_of_the_cache_mode),
    cmocka_unit_test (mode_sense_of_a_read_only_unit_sets_wp),
    cmocka_unit_test (read_capacity_reports_last_lba_and_block_size),
    cmocka_unit_test (read_capacity_10_of_a_huge_disk_says_use_16),
    cmocka_unit_test (verify_compares_data_and_reports_the_first_miscompare),
    cmocka_unit_test (write_and_verify_writes_then_checks),
    cmocka_unit_test (synchronize_cache_flushes_the_store),
    cmocka_unit_test (write_same_replicates_a_pattern_or_zeroes_or_unmaps),
    cmocka_unit_test (unmap_with_two_descriptors_trims_both_ranges),
    cmocka_unit_test (compare_and_write_writes_only_on_a_match),
    cmocka_unit_test (prefetch_test_unit_ready_and_start_stop_succeed),
    cmocka_unit_test (get_lba_status_tells_mapped_from_deallocated),
    cmocka_unit_test (report_luns_lists_lun_0),
    cmocka_unit_test (report_supported_operation_codes_lists_what_the_unit_runs),
    cmocka_unit_test (request_sense_reports_no_sense_in_the_asked_format),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
