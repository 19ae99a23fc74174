/* scsi: a SCSI direct-access block device (SBC) over a store, and the pool
 * of command objects that every request travels in.
 *
 * A front-end takes a command from a scsi_cmd_pool (its 96-byte sense
 * buffer is attached: an object is only ever handed out whole), writes a
 * CDB, attaches a data buffer (an sgv vector), calls scsi_exec, reads the
 * status and sense, and puts the command back.  scsi_exec runs the command
 * synchronously in the caller's thread and never prints; scsi_submit
 * lets a READ(16) or WRITE(16) of a store with asynchronous I/O
 * (store_submit) complete later, from the store's thread, so that a
 * caller need not wait for it.
 *
 * Command pool.  The normal path takes a cached object or allocates a new
 * command and a new sense buffer.  When either allocation fails the pool
 * falls back to its reserve free list of complete objects (command and
 * sense together: never half an object in reserve).  When the reserve is
 * empty too, scsi_cmd_get waits for a command to be put back
 * (backpressure); a request never fails because memory was short.
 */
#ifndef SGBLK_SCSI_H
#define SGBLK_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "sgv.h"

#define SCSI_SENSE_BUFFERSIZE 96
#define SCSI_CDB_MAX 32

/* SAM status codes. */
#define SCSI_STATUS_GOOD             0x00
#define SCSI_STATUS_CHECK_CONDITION  0x02
#define SCSI_STATUS_BUSY             0x08
#define SCSI_STATUS_TASK_ABORTED     0x40

/* Sense keys. */
#define SCSI_SK_NO_SENSE        0x0
#define SCSI_SK_RECOVERED_ERROR 0x1
#define SCSI_SK_NOT_READY       0x2
#define SCSI_SK_MEDIUM_ERROR    0x3
#define SCSI_SK_HARDWARE_ERROR  0x4
#define SCSI_SK_ILLEGAL_REQUEST 0x5
#define SCSI_SK_UNIT_ATTENTION  0x6
#define SCSI_SK_DATA_PROTECT    0x7
#define SCSI_SK_ABORTED_COMMAND 0xb
#define SCSI_SK_MISCOMPARE      0xe

/* Operation codes the core implements. */
#define SCSI_OP_TEST_UNIT_READY        0x00
#define SCSI_OP_REQUEST_SENSE          0x03
#define SCSI_OP_READ_6                 0x08
#define SCSI_OP_WRITE_6                0x0a
#define SCSI_OP_INQUIRY                0x12
#define SCSI_OP_MODE_SENSE_6           0x1a
#define SCSI_OP_START_STOP_UNIT        0x1b
#define SCSI_OP_READ_CAPACITY_10       0x25
#define SCSI_OP_READ_10                0x28
#define SCSI_OP_WRITE_10               0x2a
#define SCSI_OP_WRITE_AND_VERIFY_10    0x2e
#define SCSI_OP_VERIFY_10              0x2f
#define SCSI_OP_PRE_FETCH_10           0x34
#define SCSI_OP_SYNCHRONIZE_CACHE_10   0x35
#define SCSI_OP_WRITE_SAME_10          0x41
#define SCSI_OP_UNMAP                  0x42
#define SCSI_OP_MODE_SENSE_10          0x5a
#define SCSI_OP_READ_16                0x88
#define SCSI_OP_COMPARE_AND_WRITE      0x89
#define SCSI_OP_WRITE_16               0x8a
#define SCSI_OP_WRITE_AND_VERIFY_16    0x8e
#define SCSI_OP_VERIFY_16              0x8f
#define SCSI_OP_PRE_FETCH_16           0x90
#define SCSI_OP_SYNCHRONIZE_CACHE_16   0x91
#define SCSI_OP_WRITE_SAME_16          0x93
#define SCSI_OP_SERVICE_ACTION_IN_16   0x9e  /* READ CAPACITY(16) 0x10, GET LBA STATUS 0x12 */
#define SCSI_OP_REPORT_LUNS            0xa0
#define SCSI_OP_MAINTENANCE_IN         0xa3  /* REPORT SUPPORTED OPERATION CODES 0x0c */
#define SCSI_OP_READ_12                0xa8
#define SCSI_OP_WRITE_12               0xaa
#define SCSI_SAI_READ_CAPACITY_16      0x10
#define SCSI_SAI_GET_LBA_STATUS        0x12
#define SCSI_MI_REPORT_SUPPORTED_OPS   0x0c

/* ---- Command objects and their pool ---- */

struct scsi_cmd {
  uint8_t cdb[SCSI_CDB_MAX];
  unsigned cdb_len;
  /* Data buffer: data-out for writes and parameter lists, data-in for
   * reads and returned parameter data.  NULL when there is none. */
  struct sgv_vec *buf;
  uint32_t buf_len;      /* bytes of buf offered (data-out) or accepted (data-in) */
  uint32_t xfer;         /* bytes of data-in actually returned */
  uint8_t status;        /* SCSI_STATUS_* after scsi_exec */
  uint8_t *sense;        /* attached buffer of SCSI_SENSE_BUFFERSIZE bytes */
  uint32_t sense_len;    /* valid sense bytes, 0 with GOOD */
  void *priv;            /* the front-end's */
  uint64_t tag;          /* the front-end's (e.g. the NBD cookie) */
  /* Private to scsi_submit: the store request of a command in flight,
   * its unit, and whom to tell. */
  struct store_aio aio;
  struct scsi_lu *aio_lu;
  void (*done) (struct scsi_cmd *cmd, void *arg);
  void *done_arg;
  /* Private to the pool. */
  struct scsi_cmd *pool_next;
  bool from_reserve;
};

struct scsi_cmd_pool_config {
  unsigned reserve;      /* complete objects kept in reserve (default 16) */
  unsigned max_cached;   /* normal objects kept for reuse (default 256) */
};

struct scsi_pool_stats {
  uint64_t allocated;      /* normal objects that exist (cached + in use) */
  uint64_t in_use;         /* handed out now, normal and reserve */
  uint64_t cached;         /* normal objects idle for reuse */
  uint64_t reserve_size;   /* complete objects in the reserve */
  uint64_t reserve_level;  /* of those, idle now */
  uint64_t fallbacks;      /* gets served from the reserve */
  uint64_t waits;          /* gets that had to wait for a put */
  uint64_t alloc_failures; /* normal allocations that failed */
};

struct scsi_cmd_pool;
struct scsi_cmd_pool *scsi_cmd_pool_create (const struct scsi_cmd_pool_config *cfg);
/* -1 with EBUSY if commands are still out (they are not freed). */
int scsi_cmd_pool_destroy (struct scsi_cmd_pool *p);
/* wait: block until a command is put back when the reserve is empty.
 * Without wait, NULL with EAGAIN in that case.  The command comes zeroed
 * (CDB, buffer, status, sense) with its sense buffer attached. */
struct scsi_cmd *scsi_cmd_get (struct scsi_cmd_pool *p, bool wait);
void scsi_cmd_put (struct scsi_cmd_pool *p, struct scsi_cmd *c);
void scsi_cmd_pool_get_stats (struct scsi_cmd_pool *p, struct scsi_pool_stats *st);
/* Allocate n normal objects now and fix the pool at that size (swap
 * mode): from then on the normal path only takes cached objects, so
 * scsi_cmd_get never calls the allocator; past them come the reserve and
 * then waiting. */
int scsi_cmd_pool_prefill (struct scsi_cmd_pool *p, unsigned n);
/* Test hook: every nth normal allocation fails (1 = always, 0 = never). */
void scsi_cmd_pool_fail_every (struct scsi_cmd_pool *p, unsigned nth);

/* ---- Logical units ---- */

struct scsi_lu_config {
  struct store *store;
  struct sgv_pool *sgv;     /* scratch buffers (COMPARE AND WRITE, VERIFY, WRITE SAME) */
  uint32_t block_size;      /* 512 or 4096 */
  bool read_only;
  bool write_cache;         /* WCE in the caching mode page */
  const char *vendor;       /* INQUIRY; NULL for defaults */
  const char *product;
  const char *serial;
};

struct scsi_lu_stats {
  uint64_t commands, reads, writes, read_bytes, write_bytes;
  uint64_t syncs, unmaps, write_sames, errors;
  /* Store failures answered as a medium or target failure (clients see
   * EIO), for the daemon to report: how many, and the last one's errno
   * and operation code. */
  uint64_t store_errors;
  int last_store_errno;
  uint8_t last_store_op;
};

struct scsi_lu;
struct scsi_lu *scsi_lu_create (const struct scsi_lu_config *cfg);
void scsi_lu_destroy (struct scsi_lu *lu);
uint64_t scsi_lu_nblocks (const struct scsi_lu *lu);
uint32_t scsi_lu_block_size (const struct scsi_lu *lu);
struct store *scsi_lu_store (const struct scsi_lu *lu);
/* Ready the calling thread for I/O on the unit's store, ahead of it
 * (store_thread_prepare).  -1 with errno (ENOMEM). */
int scsi_lu_thread_prepare (struct scsi_lu *lu);
/* While stopping, media access commands fail NOT READY (2/04/xx). */
void scsi_lu_set_stopping (struct scsi_lu *lu, bool stopping);
/* D_SENSE: report every error in descriptor format (fixed by default). */
void scsi_lu_set_descriptor_sense (struct scsi_lu *lu, bool on);
void scsi_lu_get_stats (struct scsi_lu *lu, struct scsi_lu_stats *st);

/* Execute one command; returns its status (cmd->status).  Media errors
 * are reported in status and sense, not as a return of -1. */
int scsi_exec (struct scsi_lu *lu, struct scsi_cmd *cmd);
/* Whether scsi_submit may return before the command is done: the unit's
 * store takes requests asynchronously. */
bool scsi_lu_async (const struct scsi_lu *lu);
/* Execute cmd and call done (cmd, arg) exactly once, when its status and
 * sense are set: a READ(16) or WRITE(16) without FUA, whose buffer is
 * exactly its transfer, on a unit where scsi_lu_async holds, completes
 * later from the store's completion thread; any other command before
 * this returns, as scsi_exec.  done must not wait for I/O. */
void scsi_submit (struct scsi_lu *lu, struct scsi_cmd *cmd,
                  void (*done) (struct scsi_cmd *cmd, void *arg), void *arg);

/* Complete cmd with CHECK CONDITION and the given sense triple; used by
 * the core and by front-ends that abort a command (ABORTED COMMAND). */
void scsi_set_sense (struct scsi_cmd *cmd, bool descriptor, uint8_t key,
                     uint8_t asc, uint8_t ascq);

/* ---- Sense decoding and mapping ---- */

struct scsi_sense_info {
  uint8_t response_code;    /* 0x70/0x71 fixed, 0x72/0x73 descriptor */
  uint8_t key, asc, ascq;
  bool info_valid;
  uint64_t info;            /* INFORMATION (e.g. LBA, miscompare offset) */
  bool sksv;                /* sense-key specific valid: field pointer */
  bool field_in_cdb;        /* C/D bit */
  uint16_t field;           /* field pointer: byte offset */
};
/* -1 with EINVAL if the buffer is not sense data. */
int scsi_sense_decode (const uint8_t *sense, size_t len, struct scsi_sense_info *out);
/* The errno a front-end reports for a finished command (the sense table
 * of docs/architecture.md): 0 for GOOD, else EINVAL, ENOSPC, EPERM, EIO, ESHUTDOWN ... */
int scsi_cmd_errno (const struct scsi_cmd *cmd);

/* ---- CDB builders used by the front-ends; each returns the CDB length. */
unsigned scsi_cdb_read16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks, bool fua);
unsigned scsi_cdb_write16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks, bool fua);
unsigned scsi_cdb_sync_cache16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks);
/* UNMAP: CDB plus a parameter list of n descriptors written into buf
 * (8 + 16 * n bytes); returns the CDB length, the list length in *plen. */
unsigned scsi_cdb_unmap (uint8_t *cdb, uint8_t *param, const uint64_t *lba,
                         const uint32_t *nblocks, unsigned n, uint32_t *plen);
/* WRITE SAME(16) with NDOB (no data-out buffer: zeroes) and UNMAP bits. */
unsigned scsi_cdb_write_same16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks,
                                bool unmap, bool ndob);
unsigned scsi_cdb_prefetch16 (uint8_t *cdb, uint64_t lba, uint32_t nblocks);
unsigned scsi_cdb_get_lba_status (uint8_t *cdb, uint64_t lba, uint32_t alloc_len);

/* GET LBA STATUS parameter data, decoded. */
struct scsi_lba_status {
  uint64_t lba;
  uint32_t nblocks;
  uint8_t provisioning;   /* 0 mapped, 1 deallocated, 2 anchored */
};
/* Decode up to max descriptors; returns the count, -1/EINVAL if malformed. */
int scsi_decode_lba_status (const uint8_t *data, size_t len,
                            struct scsi_lba_status *out, int max);

/* Largest blocks in one UNMAP descriptor / WRITE SAME that the core takes. */
#define SCSI_MAX_UNMAP_BLOCKS     0xffffffffu
#define SCSI_MAX_UNMAP_DESCRIPTORS 256u

#endif
