/* SPC: the primary commands every unit answers (INQUIRY and its VPD
 * pages, MODE SENSE, REQUEST SENSE, REPORT LUNS, REPORT SUPPORTED
 * OPERATION CODES, TEST UNIT READY).  Each builds its parameter data in a
 * local buffer and returns at most the allocation length. */
#include <config.h>

#include <string.h>

#include "internal.h"

void
spc_test_unit_ready (struct scsi_lu *lu, struct scsi_cmd *c)
{
  if (atomic_load (&lu->stopping))
    scsi_fail (lu, c, SCSI_SK_NOT_READY, 0x04, SCSI_ASCQ_STOPPING);
}

void
spc_request_sense (struct scsi_lu *lu, struct scsi_cmd *c)
{
  uint8_t data[SCSI_SENSE_BUFFERSIZE];
  bool desc = (c->cdb[1] & 0x01) != 0;
  struct scsi_cmd tmp = { .sense = data };

  /* No deferred errors are kept: the answer is always NO SENSE, in the
   * format asked for. */
  scsi_set_sense (&tmp, desc, SCSI_SK_NO_SENSE, 0x00, 0x00);
  if (atomic_load (&lu->stopping))
    scsi_set_sense (&tmp, desc, SCSI_SK_NOT_READY, 0x04, SCSI_ASCQ_STOPPING);
  scsi_data_in (c, data, tmp.sense_len < c->cdb[4] ? tmp.sense_len : c->cdb[4]);
}

static size_t
vpd_page (struct scsi_lu *lu, uint8_t page, uint8_t *d)
{
  static const uint8_t supported[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };
  size_t len;

  memset (d, 0, 256);
  d[1] = page;
  switch (page) {
  case 0x00:
    memcpy (d + 4, supported, sizeof supported);
    len = sizeof supported;
    break;
  case 0x80:
    len = strlen (lu->serial);
    memcpy (d + 4, lu->serial, len);
    break;
  case 0x83: {
    uint8_t *p = d + 4;
    size_t sl = strlen (lu->serial);
    /* T10 vendor ID designator: ASCII, vendor then serial. */
    p[0] = 0x02;  p[1] = 0x01;  p[3] = (uint8_t) (8 + sl);
    memcpy (p + 4, lu->vendor, 8);
    memcpy (p + 12, lu->serial, sl);
    p += 4 + 8 + sl;
    /* NAA 3 (locally assigned), 8 bytes, from a hash of the serial. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sl; i++)
      h = (h ^ (uint8_t) lu->serial[i]) * 1099511628211ull;
    p[0] = 0x01;  p[1] = 0x03;  p[3] = 8;
    be_put64 (p + 4, (h & 0x0fffffffffffffffull) | 0x3000000000000000ull);
    p += 12;
    len = (size_t) (p - (d + 4));
    break;
  }
  case 0xb0: {                        /* block limits */
    uint32_t max_blocks = SCSI_MAX_XFER_BYTES >> lu->bs_shift;
    len = 0x3c;
    d[4] = 0x01;                      /* WSNZ */
    d[5] = SCSI_MAX_CAW_BLOCKS;
    be_put16 (d + 6, (uint16_t) (4096 >> lu->bs_shift));   /* optimal granularity */
    be_put32 (d + 8, max_blocks);                          /* maximum transfer */
    be_put32 (d + 12, max_blocks);                         /* optimal transfer */
    be_put32 (d + 16, max_blocks);                         /* maximum prefetch */
    if (lu->store->caps & STORE_CAP_TRIM) {
      be_put32 (d + 20, SCSI_MAX_UNMAP_BLOCKS);
      be_put32 (d + 24, SCSI_MAX_UNMAP_DESCRIPTORS);
      be_put32 (d + 28, 4096 >> lu->bs_shift);             /* unmap granularity */
    }
    be_put64 (d + 36, UINT32_MAX);                         /* maximum write same */
    break;
  }
  case 0xb1:                          /* block device characteristics */
    len = 0x3c;
    be_put16 (d + 4, 1);              /* non-rotating medium */
    break;
  case 0xb2:                          /* logical block provisioning */
    len = 4;
    d[5] = 0x80 | 0x40 | 0x20 | 0x04; /* LBPU, LBPWS, LBPWS10, LBPRZ=1 */
    d[6] = (lu->store->caps & STORE_CAP_TRIM) ? 0x02 : 0x00;  /* thin / full */
    break;
  default:
    return 0;
  }
  be_put16 (d + 2, (uint16_t) len);
  return 4 + len;
}

void
spc_inquiry (struct scsi_lu *lu, struct scsi_cmd *c)
{
  uint8_t d[256];
  uint16_t alloc = be_get16 (c->cdb + 3);
  size_t len;

  if (c->cdb[1] & 0x01) {
    len = vpd_page (lu, c->cdb[2], d);
    if (len == 0) {
      scsi_fail_field (lu, c, 2, -1);
      return;
    }
  }
  else {
    if (c->cdb[2] != 0) {             /* a page code needs EVPD */
      scsi_fail_field (lu, c, 2, -1);
      return;
    }
    memset (d, 0, 36);
    d[0] = 0x00;                      /* direct-access block device */
    d[2] = 0x06;                      /* SPC-4 */
    d[3] = 0x02;                      /* response data format 2 */
    d[4] = 36 - 5;
    d[7] = 0x02;                      /* CMDQUE */
    memcpy (d + 8, lu->vendor, 8);
    memcpy (d + 16, lu->product, 16);
    memcpy (d + 32, PACKAGE_VERSION "    ", 4);
    len = 36;
  }
  scsi_data_in (c, d, len < alloc ? len : alloc);
}

/* Append mode page 'page' for page control pc; returns its length. */
static size_t
mode_page (struct scsi_lu *lu, uint8_t page, unsigned pc, uint8_t *p)
{
  switch (page) {
  case 0x08:                          /* caching */
    memset (p, 0, 20);
    p[0] = 0x08;
    p[1] = 0x12;
    if (pc != 1 && lu->write_cache)   /* nothing is changeable */
      p[2] = 0x04;                    /* WCE */
    return 20;
  case 0x0a:                          /* control */
    memset (p, 0, 12);
    p[0] = 0x0a;
    p[1] = 0x0a;
    if (pc != 1 && atomic_load (&lu->dsense))
      p[2] = 0x04;                    /* D_SENSE */
    if (pc != 1)
      p[3] = 0x10;                    /* unrestricted reordering */
    return 12;
  default:
    return 0;
  }
}

void
spc_mode_sense (struct scsi_lu *lu, struct scsi_cmd *c)
{
  bool ten = c->cdb[0] == SCSI_OP_MODE_SENSE_10;
  bool dbd = (c->cdb[1] & 0x08) != 0;
  unsigned pc = c->cdb[2] >> 6;
  uint8_t page = c->cdb[2] & 0x3f, subpage = c->cdb[3];
  uint32_t alloc = ten ? be_get16 (c->cdb + 7) : c->cdb[4];
  uint8_t d[128];
  size_t hdr = ten ? 8 : 4, len;

  if (pc == 3) {                      /* saved values: not supported */
    scsi_fail (lu, c, SCSI_SK_ILLEGAL_REQUEST, 0x39, 0x00);
    return;
  }
  if (subpage != 0 && !(page == 0x3f && subpage == 0xff)) {
    scsi_fail_field (lu, c, 3, -1);
    return;
  }
  memset (d, 0, sizeof d);
  len = hdr;
  if (!dbd) {                         /* one short block descriptor */
    uint64_t nb = lu->nblocks > 0xffffff ? 0xffffff : lu->nblocks;
    if (ten)
      be_put16 (d + 6, 8);
    else
      d[3] = 8;
    be_put32 (d + len, (uint32_t) nb);    /* density 0, 24-bit count */
    be_put32 (d + len + 4, lu->bs);
    len += 8;
  }
  if (page == 0x3f) {
    len += mode_page (lu, 0x08, pc, d + len);
    len += mode_page (lu, 0x0a, pc, d + len);
  }
  else {
    size_t n = mode_page (lu, page, pc, d + len);
    if (n == 0) {
      scsi_fail_field (lu, c, 2, 5);
      return;
    }
    len += n;
  }
  uint8_t devspec = 0x10;             /* DPOFUA: FUA is honoured */
  if (lu->read_only)
    devspec |= 0x80;                  /* WP */
  if (ten) {
    be_put16 (d, (uint16_t) (len - 2));
    d[3] = devspec;
  }
  else {
    d[0] = (uint8_t) (len - 1);
    d[2] = devspec;
  }
  scsi_data_in (c, d, len < alloc ? len : alloc);
}

void
spc_report_luns (struct scsi_lu *lu, struct scsi_cmd *c)
{
  uint8_t d[16] = { 0 };
  uint32_t alloc = be_get32 (c->cdb + 6);

  if (alloc < 16) {
    scsi_fail_field (lu, c, 6, -1);
    return;
  }
  be_put32 (d, 8);                    /* one LUN: LUN 0 */
  scsi_data_in (c, d, sizeof d);
}

void
spc_report_supported_ops (struct scsi_lu *lu, struct scsi_cmd *c)
{
  unsigned opts = c->cdb[2] & 0x07;
  uint8_t req_op = c->cdb[3];
  uint16_t req_sa = be_get16 (c->cdb + 4);
  uint32_t alloc = be_get32 (c->cdb + 6);
  uint8_t d[8 + 20 * 40];
  size_t len;

  memset (d, 0, sizeof d);
  if (opts == 0) {                    /* all commands */
    len = 4;
    for (size_t i = 0; i < scsi_nops; i++) {
      uint8_t *p = d + len;
      p[0] = scsi_ops[i].op;
      if (scsi_ops[i].sa >= 0) {
        be_put16 (p + 2, (uint16_t) scsi_ops[i].sa);
        p[5] = 0x01;                  /* SERVACTV */
      }
      be_put16 (p + 6, scsi_ops[i].cdb_len);
      len += 8;
    }
    be_put32 (d, (uint32_t) (len - 4));
  }
  else if (opts == 1 || opts == 2) {
    const struct scsi_opinfo *op = NULL;
    bool has_sa = false;
    for (size_t i = 0; i < scsi_nops; i++)
      if (scsi_ops[i].op == req_op && scsi_ops[i].sa >= 0)
        has_sa = true;
    /* Option 1 is for commands without service actions, 2 for those with. */
    if ((opts == 1 && has_sa) || (opts == 2 && !has_sa)) {
      scsi_fail_field (lu, c, 2, -1);
      return;
    }
    op = scsi_find_op (req_op, opts == 2 ? req_sa : -1);
    if (op == NULL) {
      d[1] = 0x01;                    /* not supported */
      len = 4;
    }
    else {
      d[1] = 0x03;                    /* supported, per the standard */
      be_put16 (d + 2, op->cdb_len);
      /* CDB usage data: the opcode, then every bit usable but the
       * reserved ones we cannot name; the control byte last. */
      d[4] = op->op;
      memset (d + 5, 0xff, op->cdb_len - 1u);
      if (op->sa >= 0)
        d[5] = (uint8_t) op->sa;
      d[4 + op->cdb_len - 1] = 0x07;
      len = 4 + op->cdb_len;
    }
  }
  else {
    scsi_fail_field (lu, c, 2, 2);
    return;
  }
  scsi_data_in (c, d, len < alloc ? len : alloc);
}
