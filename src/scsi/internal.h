/* Private to the SCSI core: the logical unit, the command table and the
 * helpers that complete a command with sense data. */
#ifndef SGBLK_SCSI_INTERNAL_H
#define SGBLK_SCSI_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "be.h"
#include "scsi.h"

/* NOT READY 2/04/12 (LOGICAL UNIT NOT READY, OFFLINE) is what a stopping
 * unit returns; scsi_cmd_errno maps exactly this triple to ESHUTDOWN. */
#define SCSI_ASCQ_STOPPING 0x12

#define SCSI_MAX_XFER_BYTES (32u * 1024 * 1024)
#define SCSI_MAX_CAW_BLOCKS 255u

struct scsi_lu {
  struct store *store;
  struct sgv_pool *sgv;
  uint32_t bs;
  unsigned bs_shift;
  uint64_t nblocks;
  bool read_only;
  bool write_cache;
  atomic_bool stopping;
  atomic_bool dsense;            /* D_SENSE: descriptor format always */
  char vendor[9], product[17], serial[33];
  pthread_mutex_t caw_lock;      /* COMPARE AND WRITE is atomic against itself */
  struct {
    atomic_uint_fast64_t commands, reads, writes, read_bytes, write_bytes;
    atomic_uint_fast64_t syncs, unmaps, write_sames, errors;
    atomic_uint_fast64_t store_errors;
    /* The last store error: errno << 8 | operation code, one word so
     * that a reader never pairs one error's errno with another's op. */
    atomic_uint last_store_error;
  } st;
};

/* Command table entry flags. */
#define SCSI_F_MEDIA 0x1   /* media access: refused NOT READY while stopping */
#define SCSI_F_WRITE 0x2   /* modifies the medium: refused on a read-only unit */

typedef void (*scsi_handler) (struct scsi_lu *lu, struct scsi_cmd *c);

struct scsi_opinfo {
  uint8_t op;
  int16_t sa;              /* service action, -1 if none */
  uint8_t cdb_len;
  uint8_t flags;
  scsi_handler fn;
};

extern const struct scsi_opinfo scsi_ops[];
extern const size_t scsi_nops;
const struct scsi_opinfo *scsi_find_op (uint8_t op, int sa);
int scsi_service_action (const uint8_t *cdb);

/* Completion helpers (sense.c). */
void scsi_fail (struct scsi_lu *lu, struct scsi_cmd *c,
                uint8_t key, uint8_t asc, uint8_t ascq);
void scsi_fail_info (struct scsi_lu *lu, struct scsi_cmd *c, uint8_t key,
                     uint8_t asc, uint8_t ascq, uint64_t info);
/* INVALID FIELD IN CDB with a field pointer to byte (and bit, or -1). */
void scsi_fail_field (struct scsi_lu *lu, struct scsi_cmd *c, unsigned byte, int bit);
void scsi_fail_lba (struct scsi_lu *lu, struct scsi_cmd *c, uint64_t lba);
/* Map a store errno to sense (read or write side). */
void scsi_fail_errno (struct scsi_lu *lu, struct scsi_cmd *c, int err, bool write);
/* Copy parameter data to the data-in buffer, truncated to buf_len. */
void scsi_data_in (struct scsi_cmd *c, const void *data, size_t n);

/* Handlers. */
void sbc_read (struct scsi_lu *, struct scsi_cmd *);
/* READ(16) or WRITE(16) through store_submit; false (nothing done) when
 * the command cannot go that way (FUA, a buffer other than the exact
 * transfer). */
bool sbc_submit_rw (struct scsi_lu *, struct scsi_cmd *);
void sbc_write (struct scsi_lu *, struct scsi_cmd *);
void sbc_verify (struct scsi_lu *, struct scsi_cmd *);
void sbc_write_verify (struct scsi_lu *, struct scsi_cmd *);
void sbc_sync_cache (struct scsi_lu *, struct scsi_cmd *);
void sbc_write_same (struct scsi_lu *, struct scsi_cmd *);
void sbc_unmap (struct scsi_lu *, struct scsi_cmd *);
void sbc_compare_and_write (struct scsi_lu *, struct scsi_cmd *);
void sbc_prefetch (struct scsi_lu *, struct scsi_cmd *);
void sbc_get_lba_status (struct scsi_lu *, struct scsi_cmd *);
void sbc_read_capacity10 (struct scsi_lu *, struct scsi_cmd *);
void sbc_read_capacity16 (struct scsi_lu *, struct scsi_cmd *);
void sbc_start_stop (struct scsi_lu *, struct scsi_cmd *);
void spc_test_unit_ready (struct scsi_lu *, struct scsi_cmd *);
void spc_request_sense (struct scsi_lu *, struct scsi_cmd *);
void spc_inquiry (struct scsi_lu *, struct scsi_cmd *);
void spc_mode_sense (struct scsi_lu *, struct scsi_cmd *);
void spc_report_luns (struct scsi_lu *, struct scsi_cmd *);
void spc_report_supported_ops (struct scsi_lu *, struct scsi_cmd *);

#define STAT_INC(lu, f) atomic_fetch_add_explicit (&(lu)->st.f, 1, memory_order_relaxed)
#define STAT_ADD(lu, f, n) atomic_fetch_add_explicit (&(lu)->st.f, (n), memory_order_relaxed)

#endif
