/* Private to the NBD front-end: server, connection and request objects.
 *
 * Threads: one acceptor per server; one thread per connection, which runs
 * the handshake, then reads requests and queues them, then runs the
 * connection's cleanup; a pool of workers shared by every connection,
 * which execute requests and send their replies.
 *
 * A request (struct nbd_job) is one of a fixed array per connection, so
 * the data path never allocates: the connection thread takes a free job,
 * a command from the export's pool and a vector from its sgv pool, reads
 * the payload straight into the vector and queues the job; a worker runs
 * it and sends the reply from the same vector under the connection's send
 * lock, then gives everything back.
 */
#ifndef SGBLK_NBD_INTERNAL_H
#define SGBLK_NBD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>

#include "nbd.h"
#include "protocol.h"

#define NBD_JOBS_PER_CONN 64
#define NBD_RXBUF (64u * 1024)
#define NBD_MAX_REPLY_IOV (NBD_MAX_PAYLOAD / SGV_MAX_SEG + 8)
#define NBD_HANDSHAKE_TIMEOUT 30       /* seconds without progress */
#define NBD_CLEANUP_TIMEOUT 5          /* seconds without a completion */

struct nbd_conn;

struct nbd_job {
  struct nbd_job *next;          /* free list or worker queue */
  struct nbd_conn *conn;
  uint16_t flags, type;
  uint64_t cookie, offset;
  uint32_t length;
  struct scsi_cmd *cmd;          /* taken when queued */
  struct sgv_vec *vec;           /* the payload or the read data */
  int error;                     /* host errno decided by the reader, 0 = run it */
  bool batch_reply;              /* run by the reader: small replies may wait in txb */
  struct iovec iov[NBD_MAX_REPLY_IOV];
};

/* Connection states, in order. */
enum nbd_conn_state {
  NBD_CONN_HANDSHAKE,     /* negotiating options; nothing queued yet */
  NBD_CONN_TRANSMISSION,  /* reading requests and queueing them */
  NBD_CONN_DRAINING,      /* reading stopped; waiting for requests in flight */
  NBD_CONN_CLOSED,        /* cleanup done; the object is about to be freed */
};

struct nbd_conn {
  struct nbd_server *srv;
  struct nbd_conn *next_conn;    /* the server's list */
  int fd;
  char peer[64];
  enum nbd_conn_state state;
  struct nbd_export *exp;
  bool structured;               /* structured replies negotiated */
  bool base_allocation;          /* base:allocation negotiated (context id 1) */
  bool no_zeroes;
  atomic_bool dead;              /* the socket failed: abort queued reads */

  /* Receive buffer: bytes [rx_start, rx_end) are read but not parsed. */
  uint8_t *rx;
  size_t rx_start, rx_end;

  pthread_mutex_t send_lock;     /* one reply on the wire at a time */
  /* Small replies of requests the reader ran itself, sent together when
   * the reader has nothing more buffered (one sendmsg, not one each). */
  uint8_t txb[4096];
  size_t txlen;

  pthread_mutex_t lock;          /* jobs free list and in-flight count */
  pthread_cond_t cond;
  struct nbd_job *free_jobs;
  unsigned inflight;
  uint64_t completions;          /* for cleanup's progress check */
  atomic_int cmds_out, vecs_out;
  struct nbd_job jobs[NBD_JOBS_PER_CONN];
};

struct nbd_server {
  struct nbd_server_config cfg;
  struct nbd_export *exports;

  int listen_fds[8];
  char *unix_paths[8];
  unsigned nlisten;
  int stop_pipe[2];
  pthread_t acceptor;
  bool acceptor_started;

  pthread_t *workers;
  unsigned nworkers;
  bool started;

  pthread_mutex_t qlock;          /* worker queue */
  pthread_cond_t qcond;
  struct nbd_job *qhead, *qtail;
  bool workers_exit;

  pthread_mutex_t clock;          /* connection list */
  pthread_cond_t ccond;
  struct nbd_conn *conns;
  unsigned nconns;
  atomic_bool stopping;
  bool stopped;

  struct {
    atomic_uint_fast64_t connections_total, requests, errors;
    atomic_uint_fast64_t bytes_read, bytes_written, handshake_failures;
    atomic_uint_fast64_t cleanup_stuck;
  } st;
};

/* handshake.c: 0 when transmission may start, -1 to close the socket. */
int nbd_handshake (struct nbd_conn *c);
/* conn.c */
int nbd_read_full (struct nbd_conn *c, void *buf, size_t n);
int nbd_write_full (int fd, const void *buf, size_t n);
int nbd_writev_full (int fd, struct iovec *iov, int cnt);
void nbd_flush_replies (struct nbd_conn *c);
void *nbd_conn_thread (void *arg);
/* A vector for len bytes, counted against the connection; waits out a
 * moment of memory shortage.  NULL only while stopping. */
struct sgv_vec *nbd_get_vec (struct nbd_conn *c, size_t len);
/* request.c */
void nbd_job_run (struct nbd_job *j);
void nbd_job_reply_error (struct nbd_job *j, int err);
int nbd_errno_to_wire (int err);
uint16_t nbd_export_tflags (const struct nbd_export *e);
/* server.c */
void nbd_queue_job (struct nbd_server *s, struct nbd_job *j);
void nbd_job_finish (struct nbd_job *j);

#define NSTAT_INC(s, f) atomic_fetch_add_explicit (&(s)->st.f, 1, memory_order_relaxed)
#define NSTAT_ADD(s, f, n) atomic_fetch_add_explicit (&(s)->st.f, (n), memory_order_relaxed)

static inline void wr16 (uint8_t *p, uint16_t v) { p[0] = (uint8_t) (v >> 8); p[1] = (uint8_t) v; }
static inline void wr32 (uint8_t *p, uint32_t v) { wr16 (p, (uint16_t) (v >> 16)); wr16 (p + 2, (uint16_t) v); }
static inline void wr64 (uint8_t *p, uint64_t v) { wr32 (p, (uint32_t) (v >> 32)); wr32 (p + 4, (uint32_t) v); }
static inline uint16_t rd16 (const uint8_t *p) { return (uint16_t) (p[0] << 8 | p[1]); }
static inline uint32_t rd32 (const uint8_t *p) { return (uint32_t) rd16 (p) << 16 | rd16 (p + 2); }
static inline uint64_t rd64 (const uint8_t *p) { return (uint64_t) rd32 (p) << 32 | rd32 (p + 4); }

#endif
