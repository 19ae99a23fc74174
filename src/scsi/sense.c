/* Sense data: building it (fixed format 0x70 or descriptor format 0x72),
 * decoding it, and mapping a finished command to the errno a front-end
 * reports (docs/architecture.md, "Sense data").
 *
 * Fixed format carries a 32-bit INFORMATION field, so a unit switches to
 * descriptor format for a command whose INFORMATION value (an LBA) does not
 * fit, and for every command once D_SENSE is set.
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "internal.h"

struct sense_args {
  uint8_t key, asc, ascq;
  bool info_valid;
  uint64_t info;
  bool sksv;        /* field pointer present */
  bool cd;          /* the field is in the CDB (not the parameter list) */
  int bit;          /* bit pointer, -1 for none */
  uint16_t field;
};

static uint32_t
build_sense (uint8_t *s, bool descriptor, const struct sense_args *a)
{
  memset (s, 0, SCSI_SENSE_BUFFERSIZE);
  if (!descriptor) {
    s[0] = 0x70 | (a->info_valid ? 0x80 : 0);
    s[2] = a->key & 0x0f;
    if (a->info_valid)
      be_put32 (s + 3, (uint32_t) a->info);
    s[7] = 10;                      /* additional sense length */
    s[12] = a->asc;
    s[13] = a->ascq;
    if (a->sksv) {
      s[15] = (uint8_t) (0x80 | (a->cd ? 0x40 : 0) |
                         (a->bit >= 0 ? 0x08 | (a->bit & 7) : 0));
      be_put16 (s + 16, a->field);
    }
    return 18;
  }

  uint32_t len = 8;
  s[0] = 0x72;
  s[1] = a->key & 0x0f;
  s[2] = a->asc;
  s[3] = a->ascq;
  if (a->info_valid) {              /* information descriptor */
    s[len] = 0x00;
    s[len + 1] = 0x0a;
    s[len + 2] = 0x80;              /* VALID */
    be_put64 (s + len + 4, a->info);
    len += 12;
  }
  if (a->sksv) {                    /* sense key specific descriptor */
    s[len] = 0x02;
    s[len + 1] = 0x06;
    s[len + 4] = (uint8_t) (0x80 | (a->cd ? 0x40 : 0) |
                            (a->bit >= 0 ? 0x08 | (a->bit & 7) : 0));
    be_put16 (s + len + 5, a->field);
    len += 8;
  }
  s[7] = (uint8_t) (len - 8);
  return len;
}

static void
complete_sense (struct scsi_lu *lu, struct scsi_cmd *c, const struct sense_args *a)
{
  bool desc = (lu && atomic_load_explicit (&lu->dsense, memory_order_relaxed)) ||
              (a->info_valid && a->info > UINT32_MAX);

  c->status = SCSI_STATUS_CHECK_CONDITION;
  c->sense_len = build_sense (c->sense, desc, a);
  c->xfer = 0;
  if (lu)
    STAT_INC (lu, errors);
}

void
scsi_set_sense (struct scsi_cmd *cmd, bool descriptor, uint8_t key,
                uint8_t asc, uint8_t ascq)
{
  struct sense_args a = { .key = key, .asc = asc, .ascq = ascq, .bit = -1 };

  cmd->status = SCSI_STATUS_CHECK_CONDITION;
  cmd->sense_len = build_sense (cmd->sense, descriptor, &a);
  cmd->xfer = 0;
}

void
scsi_fail (struct scsi_lu *lu, struct scsi_cmd *c, uint8_t key, uint8_t asc,
           uint8_t ascq)
{
  struct sense_args a = { .key = key, .asc = asc, .ascq = ascq, .bit = -1 };
  complete_sense (lu, c, &a);
}

void
scsi_fail_info (struct scsi_lu *lu, struct scsi_cmd *c, uint8_t key,
                uint8_t asc, uint8_t ascq, uint64_t info)
{
  struct sense_args a = { .key = key, .asc = asc, .ascq = ascq, .bit = -1,
                          .info_valid = true, .info = info };
  complete_sense (lu, c, &a);
}

void
scsi_fail_field (struct scsi_lu *lu, struct scsi_cmd *c, unsigned byte, int bit)
{
  struct sense_args a = { .key = SCSI_SK_ILLEGAL_REQUEST, .asc = 0x24,
                          .sksv = true, .cd = true, .bit = bit,
                          .field = (uint16_t) byte };
  complete_sense (lu, c, &a);
}

void
scsi_fail_lba (struct scsi_lu *lu, struct scsi_cmd *c, uint64_t lba)
{
  scsi_fail_info (lu, c, SCSI_SK_ILLEGAL_REQUEST, 0x21, 0x00, lba);
}

/* The store's errno as sense (docs/architecture.md, "Sense data").
 *
 * EROFS and EPERM are a medium failure here, never WRITE PROTECTED: the
 * core refuses writes to a read-only unit itself, before the store, so
 * from the store they mean that the backing file's filesystem went
 * read-only (or refused us) under a writable unit; and NBD clients take
 * EPERM for a read-only export.  SYNCHRONIZE CACHE (write true) that
 * cannot write the cache back is a WRITE ERROR like the write itself: SBC
 * has no sense of its own for it.  What no medium says (EBADF, ENOMEM,
 * EINVAL...) is INTERNAL TARGET FAILURE.  Each failure that a client
 * sees as EIO is counted, with its errno and opcode, for the daemon to
 * report: the data path does not log. */
void
scsi_fail_errno (struct scsi_lu *lu, struct scsi_cmd *c, int err, bool write)
{
  switch (err) {
  case ENOSPC:
  case EDQUOT:
    /* SPACE ALLOCATION FAILED WRITE PROTECT */
    scsi_fail (lu, c, SCSI_SK_DATA_PROTECT, 0x27, 0x07);
    return;
  case EIO:
  case EROFS:
  case EPERM:
    if (write)
      scsi_fail (lu, c, SCSI_SK_MEDIUM_ERROR, 0x0c, 0x00);   /* WRITE ERROR */
    else
      scsi_fail (lu, c, SCSI_SK_MEDIUM_ERROR, 0x11, 0x00);   /* UNRECOVERED READ ERROR */
    break;
  default:
    scsi_fail (lu, c, SCSI_SK_HARDWARE_ERROR, 0x44, 0x00);   /* INTERNAL TARGET FAILURE */
    break;
  }
  if (lu) {
    STAT_INC (lu, store_errors);
    atomic_store_explicit (&lu->st.last_store_error,
                           (unsigned) err << 8 | c->cdb[0], memory_order_relaxed);
  }
}

void
scsi_data_in (struct scsi_cmd *c, const void *data, size_t n)
{
  if (n > c->buf_len)
    n = c->buf_len;
  if (c->buf && n > c->buf->len)
    n = c->buf->len;
  if (c->buf == NULL)
    n = 0;
  if (n)
    sgv_copy_from_buf (c->buf, 0, data, n);
  c->xfer = (uint32_t) n;
}

int
scsi_sense_decode (const uint8_t *s, size_t len, struct scsi_sense_info *o)
{
  memset (o, 0, sizeof *o);
  if (s == NULL || len < 8)
    goto bad;
  o->response_code = s[0] & 0x7f;
  switch (o->response_code) {
  case 0x70: case 0x71:
    if (len < 14)
      goto bad;
    o->key = s[2] & 0x0f;
    o->asc = s[12];
    o->ascq = s[13];
    o->info_valid = (s[0] & 0x80) != 0;
    o->info = be_get32 (s + 3);
    if (len >= 18 && (s[15] & 0x80)) {
      o->sksv = true;
      o->field_in_cdb = (s[15] & 0x40) != 0;
      o->field = be_get16 (s + 16);
    }
    return 0;
  case 0x72: case 0x73: {
    o->key = s[1] & 0x0f;
    o->asc = s[2];
    o->ascq = s[3];
    size_t end = 8 + (size_t) s[7];
    if (end > len)
      end = len;
    for (size_t p = 8; p + 2 <= end; p += 2 + (size_t) s[p + 1]) {
      size_t dlen = s[p + 1];
      if (p + 2 + dlen > end)
        goto bad;
      if (s[p] == 0x00 && dlen >= 0x0a) {
        o->info_valid = (s[p + 2] & 0x80) != 0;
        o->info = be_get64 (s + p + 4);
      }
      else if (s[p] == 0x02 && dlen >= 6 && (s[p + 4] & 0x80)) {
        o->sksv = true;
        o->field_in_cdb = (s[p + 4] & 0x40) != 0;
        o->field = be_get16 (s + p + 5);
      }
    }
    return 0;
  }
  default:
    goto bad;
  }
 bad:
  errno = EINVAL;
  return -1;
}

/* Commands whose "LBA out of range" means "no space there" to a writer. */
static bool
is_write_op (uint8_t op)
{
  switch (op) {
  case SCSI_OP_WRITE_6: case SCSI_OP_WRITE_10: case SCSI_OP_WRITE_12:
  case SCSI_OP_WRITE_16: case SCSI_OP_WRITE_AND_VERIFY_10:
  case SCSI_OP_WRITE_AND_VERIFY_16: case SCSI_OP_WRITE_SAME_10:
  case SCSI_OP_WRITE_SAME_16: case SCSI_OP_UNMAP:
  case SCSI_OP_COMPARE_AND_WRITE:
    return true;
  default:
    return false;
  }
}

int
scsi_cmd_errno (const struct scsi_cmd *cmd)
{
  struct scsi_sense_info si;

  if (cmd->status == SCSI_STATUS_GOOD)
    return 0;
  if (cmd->status != SCSI_STATUS_CHECK_CONDITION ||
      scsi_sense_decode (cmd->sense, cmd->sense_len, &si) == -1)
    return EIO;
  switch (si.key) {
  case SCSI_SK_ILLEGAL_REQUEST:
    if (si.asc == 0x21)
      return is_write_op (cmd->cdb[0]) ? ENOSPC : EINVAL;
    return EINVAL;
  case SCSI_SK_DATA_PROTECT:
    if (si.asc == 0x27 && si.ascq == 0x07)
      return ENOSPC;
    return EPERM;
  case SCSI_SK_NOT_READY:
    if (si.asc == 0x04 && si.ascq == SCSI_ASCQ_STOPPING)
      return ESHUTDOWN;
    return EIO;
  case SCSI_SK_NO_SENSE:
  case SCSI_SK_RECOVERED_ERROR:
    return 0;
  default:
    return EIO;
  }
}
