/* CDB builders for the front-ends, and the decoder of GET LBA STATUS
 * parameter data.  Builders write big-endian fields into a zeroed CDB and
 * return its length; they check nothing (the core does). */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "internal.h"

static unsigned
lba_len16 (uint8_t *cdb, uint8_t op, uint8_t byte1, uint64_t lba, uint32_t n)
{
  memset (cdb, 0, 16);
  cdb[0] = op;
  cdb[1] = byte1;
  be_put64 (cdb + 2, lba);
  be_put32 (cdb + 10, n);
  return 16;
}

unsigned
scsi_cdb_read16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks, bool fua)
{
  return lba_len16 (cdb, SCSI_OP_READ_16, fua ? 0x08 : 0, lba, nblocks);
}

unsigned
scsi_cdb_write16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks, bool fua)
{
  return lba_len16 (cdb, SCSI_OP_WRITE_16, fua ? 0x08 : 0, lba, nblocks);
}

unsigned
scsi_cdb_sync_cache16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks)
{
  return lba_len16 (cdb, SCSI_OP_SYNCHRONIZE_CACHE_16, 0, lba, nblocks);
}

unsigned
scsi_cdb_write_same16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks,
                       bool unmap, bool ndob)
{
  return lba_len16 (cdb, SCSI_OP_WRITE_SAME_16,
                    (uint8_t) ((unmap ? 0x08 : 0) | (ndob ? 0x01 : 0)),
                    lba, nblocks);
}

unsigned
scsi_cdb_prefetch16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks)
{
  return lba_len16 (cdb, SCSI_OP_PRE_FETCH_16, 0, lba, nblocks);
}

unsigned
scsi_cdb_get_lba_status (uint8_t *cdb, uint64_t lba, uint32_t alloc_len)
{
  lba_len16 (cdb, SCSI_OP_SERVICE_ACTION_IN_16, SCSI_SAI_GET_LBA_STATUS,
             lba, alloc_len);
  return 16;
}

unsigned
scsi_cdb_unmap (uint8_t *cdb, uint8_t *param, const uint64_t *lba,
                const uint32_t *nblocks, unsigned n, uint32_t *plen)
{
  uint32_t len = 8 + 16 * n;

  memset (cdb, 0, 10);
  cdb[0] = SCSI_OP_UNMAP;
  be_put16 (cdb + 7, (uint16_t) len);
  memset (param, 0, len);
  be_put16 (param, (uint16_t) (len - 2));
  be_put16 (param + 2, (uint16_t) (16 * n));
  for (unsigned i = 0; i < n; i++) {
    be_put64 (param + 8 + 16 * i, lba[i]);
    be_put32 (param + 16 + 16 * i, nblocks[i]);
  }
  *plen = len;
  return 10;
}

int
scsi_decode_lba_status (const uint8_t *data, size_t len,
                        struct scsi_lba_status *out, int max)
{
  uint32_t plen;
  int n = 0;

  if (len < 8) {
    errno = EINVAL;
    return -1;
  }
  plen = be_get32 (data);            /* bytes after this field */
  if (plen < 4 || (plen - 4) % 16 != 0) {
    errno = EINVAL;
    return -1;
  }
  /* The buffer may hold fewer descriptors than the server had. */
  size_t avail = len - 8 < plen - 4 ? len - 8 : plen - 4;
  for (size_t off = 8; off + 16 <= 8 + avail && n < max; off += 16, n++) {
    out[n].lba = be_get64 (data + off);
    out[n].nblocks = be_get32 (data + off + 8);
    out[n].provisioning = data[off + 12] & 0x0f;
  }
  return n;
}
