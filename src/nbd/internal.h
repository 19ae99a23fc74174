/* Private to the NBD front-end: server, connection and request objects.
 *
 * Files, each calling only those below it (no circle):
 *   server.c     listeners, the acceptor, connection threads, stop
 *   session.c    one connection's thread: handshake, reading, cleanup
 *   handshake.c  option negotiation
 *   workq.c      the worker threads shared by every connection
 *   exec.c       executing a request through the block-I/O seam
 *   send.c       a connection's sender: its replies, and only its own
 *   conn.c       the connection object: lifetime, jobs, commands and
 *                vectors taken and returned, with their accounting
 *   wire.c       socket I/O and reply encoding
 *   tls.c        TLS credentials and sessions, and the connection's I/O
 *                layer below wire.c and send.c: plain or through TLS
 *   refuse.c     connections beyond the limits, answered and closed
 *   thread.c     a connection's threads, on stacks given back at exit
 *   validate.c   request validation, a pure function
 *
 * Threads: one acceptor per server; per connection, a session thread
 * (the only reader of its socket) and a sender thread; a pool of workers
 * shared by every connection, which execute requests and hand each reply
 * to its connection's sender.  No shared thread ever writes to a socket,
 * so a client that does not read its replies stalls only itself: its
 * sender blocks, its jobs stay taken, and its session stops reading when
 * it has NBD_JOBS_PER_CONN requests or NBD_CONN_BYTES of data in flight.
 *
 * A request (struct nbd_job) is one of a fixed array per connection, so
 * the data path never allocates.  The connection object is reference
 * counted: the session holds one reference, every taken job one more, so
 * the object, and its descriptor, live until the last job that could
 * touch them is returned; a descriptor is never closed, and so never
 * reused by the kernel, while a reply could still be written to it.
 */
#ifndef SGBLK_NBD_INTERNAL_H
#define SGBLK_NBD_INTERNAL_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/uio.h>

#include "be.h"
#include "nbd.h"
#include "protocol.h"

#define NBD_JOBS_PER_CONN 64
#define NBD_CONN_BYTES (64u << 20)     /* data in flight per connection */
#define NBD_RXBUF (64u * 1024)
#define NBD_SNDBUF (4 << 20)           /* socket send buffer asked for (send.c) */
/* A reply's iovecs: its header, then the read data, which a vector holds
 * in segments of SGV_MAX_SEG; sized per server by its largest payload. */
#define NBD_REPLY_IOV(payload) ((payload) / SGV_MAX_SEG + 8)
#define NBD_HANDSHAKE_TIMEOUT 30       /* seconds without progress */
#define NBD_SEND_TIMEOUT 30            /* seconds a client may accept nothing */
#define NBD_CLEANUP_TIMEOUT 5          /* seconds without a completion */
#define NBD_STOP_GRACE 3               /* seconds clients get to take their replies */
#define NBD_REPLY_HDR 64               /* bytes of a reply's header */
#define NBD_THREAD_STACK_MIN (256u << 10)  /* a session's stack, at least */
#define NBD_SENDER_STACK (64u << 10)   /* a sender's: sendmsg, then releases */
#define NBD_REFUSE_MAX 32              /* refused sockets answered at once */
#define NBD_REFUSE_TIMEOUT 2           /* seconds a refused client is answered */
#define NBD_FD_SPARE 32                /* descriptors kept for everything else */

/* A thread on a stack of its own (thread.c). */
struct nbd_thread {
  struct nbd_thread *next;       /* the server's list of finished sessions */
  pthread_t id;
  void *map;                     /* the stack and its guard page */
  size_t map_len;
};

struct nbd_conn;

/* A request, from its header to its reply being sent. */
struct nbd_job {
  struct nbd_job *next;          /* free list, worker queue or send queue */
  struct nbd_conn *conn;
  uint16_t flags, type;
  uint64_t cookie, offset;
  uint32_t length;
  uint64_t bytes;                /* counted against NBD_CONN_BYTES */
  struct scsi_cmd *cmd;          /* taken when queued */
  struct sgv_vec *vec;           /* the payload or the read data */
  int error;                     /* errno decided by validation, 0 = run it */
  struct blkio_aio aio;          /* a read or write in flight (nbd_job_submit) */
  /* The reply: hdr, then data slices of vec (exec.c encodes, send.c sends). */
  uint8_t hdr[NBD_REPLY_HDR];
  int iovcnt;
  struct iovec *iov;             /* srv->reply_iov of them, in the conn's mapping */
};

/* A connection being refused (refuse.c). */
struct nbd_refused {
  int fd;
  uint64_t deadline_ns;
  bool flags_read;               /* the client's flags are in */
  unsigned have;                 /* bytes of hdr read */
  uint8_t hdr[16];
  uint32_t opt, skip;            /* the option read, payload bytes left */
  char why[96];
};

/* Connection states, in order. */
enum nbd_conn_state {
  NBD_CONN_HANDSHAKE,     /* negotiating options; no job taken yet */
  NBD_CONN_TRANSMISSION,  /* the session reads requests */
  NBD_CONN_DRAINING,      /* reading stopped; requests in flight finish */
  NBD_CONN_CLOSED,        /* the session is done; jobs still taken keep
                           * the object (and the descriptor) alive */
};

struct nbd_conn {
  struct nbd_server *srv;
  struct nbd_thread *session;    /* its thread; freed by the server's reaper */
  struct nbd_conn *next_conn;    /* the server's list, under its clock */
  int fd;
  char peer[64];
  _Atomic enum nbd_conn_state state;
  struct nbd_export *exp;
  bool structured;               /* structured replies negotiated */
  bool base_allocation;          /* base:allocation negotiated (context id 1) */
  bool no_zeroes;
  bool refused;                  /* the handshake logged why it refuses */
  uint64_t hs_deadline_ns;       /* the handshake's end (sync_now_ns), 0 after */
  atomic_bool dead;              /* the socket failed: nothing more is sent */

  /* TLS (tls.c): the session after STARTTLS, else NULL.  The session
   * thread receives, the sender sends; each sets its own flags. */
  void *tls;
  int tls_rx_flags, tls_tx_flags;
  bool tls_tx_timeout;           /* a send waited SO_SNDTIMEO in vain */
  int tls_sndbuf;                /* the socket's send buffer, in bytes */

  /* Receive buffer (the session's alone): [rx_start, rx_end) unparsed. */
  uint8_t *rx;
  size_t rx_start, rx_end;
  uint64_t poll_ns;              /* busy-polling window (wire.c); 0 closed */
  unsigned idle_timeout;         /* seconds, in transmission; 0 none */

  /* Sender (send.c).  send_lock: one writer of the socket at a time. */
  pthread_mutex_t send_lock;
  pthread_mutex_t sq_lock;       /* the send queue */
  pthread_cond_t sq_cond;
  struct nbd_job *sq_head, *sq_tail;
  bool sq_stop;                  /* the sender exits when the queue is empty */
  bool sender_running;
  struct nbd_thread sender;
  /* Replies of requests the session ran itself, sent together when it
   * has nothing more buffered (one sendmsg, not one each). */
  struct nbd_job *batch_head, *batch_tail;

  /* Jobs and accounting (conn.c), under lock. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct nbd_job *free_jobs;
  unsigned jobs_used;            /* jobs[] below this have been handed out */
  unsigned inflight, refs;
  uint64_t bytes_inflight;
  uint64_t completions;          /* for cleanup's progress check */
  atomic_int cmds_out, vecs_out;
  struct nbd_job jobs[NBD_JOBS_PER_CONN];
  struct iovec *iovs;            /* the jobs' reply iovecs, after the object */
};

struct nbd_server {
  struct nbd_server_config cfg;
  /* The export table: listed exports, and removed ones that connections
   * still use (until nbd_server_release_export).  Under elock, as are
   * every export's users and listed.  elock is taken before qlock. */
  pthread_mutex_t elock;
  struct nbd_export **exports;
  unsigned nexports, exports_cap;

  int listen_fds[8];
  char *unix_paths[8];
  unsigned nlisten;
  int stop_pipe[2];
  int reap_fd;                    /* eventfd: a session thread finished */
  int spare_fd;                   /* given up to accept when out of descriptors */
  pthread_t acceptor;
  bool acceptor_started;
  bool started;

  /* Workers (workq.c). */
  pthread_t *workers;
  unsigned nworkers;
  pthread_mutex_t qlock;
  pthread_cond_t qcond;
  struct nbd_job *qhead, *qtail;
  bool workers_exit;
  /* nexports, which sets how many workers one export may hold: stored
   * under elock where it changes, read by the workers without it. */
  atomic_uint table_exports;

  pthread_mutex_t clock;          /* connection list */
  pthread_cond_t ccond;
  struct nbd_conn *conns;
  unsigned nconns;
  struct nbd_thread *finished;    /* session threads to join, under clock */
  unsigned max_conns;             /* cfg.max_connections, or the default */
  unsigned reply_iov;             /* iovecs a job's reply may need */
  /* Refused connections (refuse.c), the acceptor's alone. */
  struct nbd_refused *refused;
  unsigned nrefused;
  uint64_t refused_logged_ns, refused_unlogged;
  atomic_bool stopping;
  bool stopped;
  atomic_uint pollers;            /* sessions busy-polling now (wire.c) */
  void *tls_creds;                /* tls.c's credentials, NULL with TLS off */
  unsigned max_pollers;

  struct {
    atomic_uint_fast64_t connections_total, requests, errors;
    atomic_uint_fast64_t bytes_read, bytes_written, handshake_failures;
    atomic_uint_fast64_t cleanup_stuck, send_timeouts;
    atomic_uint_fast64_t refused, idle_closed;
  } st;
};

/* server.c: look a listed export up by name and take a use of it (a
 * connection's c->exp, or a handshake answering about it), or NULL. */
struct nbd_export *nbd_export_get (struct nbd_server *s, const char *name, size_t len);
void nbd_export_put (struct nbd_server *s, struct nbd_export *e);
/* Call fn on every export in the table (only the listed ones if
 * listed_only), under elock: fn must not block. */
void nbd_export_each (struct nbd_server *s, bool listed_only,
                      void (*fn) (struct nbd_export *e, void *arg), void *arg);

/* validate.c: the errno the spec names for a request with this header on
 * this connection, 0 if it may run.  Pure; logs one debug line per
 * refusal. */
struct nbd_request {
  uint16_t flags, type;
  uint64_t cookie, offset;
  uint32_t length;
};
int nbd_validate_request (const struct nbd_conn *c, const struct nbd_request *r);

/* wire.c: the whole of n bytes or of the iovecs, through the connection's
 * I/O layer (tls.c); -1 with errno (EAGAIN: the socket's timeout). */
int nbd_read_full (struct nbd_conn *c, void *buf, size_t n);
int nbd_writev_full (struct nbd_conn *c, struct iovec *iov, int cnt);
int nbd_write_full (struct nbd_conn *c, const void *buf, size_t n);
/* Make n bytes available in the connection's receive buffer.  ETIMEDOUT:
 * the connection was idle for its idle_timeout. */
int nbd_rx_fill (struct nbd_conn *c, size_t n);
/* Read len payload bytes into v, or discard them with v NULL. */
int nbd_read_payload (struct nbd_conn *c, struct sgv_vec *v, size_t len);
int nbd_errno_to_wire (int err);
/* Encode j's reply into j->hdr / j->iov. */
void nbd_encode_ok (struct nbd_job *j);
void nbd_encode_error (struct nbd_job *j, int err);
/* The read data: j->length bytes of j->vec from its byte 0. */
void nbd_encode_data (struct nbd_job *j);
/* BLOCK_STATUS: n (length, flags) pairs. */
void nbd_encode_block_status (struct nbd_job *j, const uint32_t *ext, unsigned n);

/* conn.c */
struct nbd_conn *nbd_conn_new (struct nbd_server *s, int fd);
void nbd_conn_put (struct nbd_conn *c);   /* the session's reference */
/* Each of these waits for what it takes if wait is true; if not, it
 * fails with EAGAIN instead of waiting.  The session holds replies to
 * send together, and must send them before it waits (session.c). */
/* A free job with room for 'bytes' more data in flight. */
struct nbd_job *nbd_job_get (struct nbd_conn *c, uint64_t bytes, bool wait);
/* The job's command from the export's pool. */
bool nbd_job_take_cmd (struct nbd_job *j, bool wait);
/* A vector for len bytes, counted against the connection.  NULL with
 * errno ESHUTDOWN (stopping) or E2BIG (larger than any vector). */
struct sgv_vec *nbd_job_take_vec (struct nbd_job *j, size_t len, bool wait);
/* Return everything the job took, and the job. */
void nbd_job_release (struct nbd_job *j);
/* Wait until nothing is in flight, ending on NBD_CLEANUP_TIMEOUT without
 * a completion; returns the number still in flight. */
unsigned nbd_conn_drain (struct nbd_conn *c);

/* exec.c: run j (validated, with its command) and encode its reply. */
void nbd_job_exec (struct nbd_job *j);
/* Start a plain read or write whose unit answers asynchronously; its
 * completion encodes the reply and sends it.  false (nothing done): run
 * it with nbd_job_exec. */
bool nbd_job_submit (struct nbd_job *j);

/* send.c */
int nbd_sender_start (struct nbd_conn *c);
/* Queue j's reply for the sender; the job is released once sent. */
void nbd_send (struct nbd_job *j);
/* The session's own replies: held, then sent by nbd_send_batch. */
void nbd_send_hold (struct nbd_job *j);
void nbd_send_batch (struct nbd_conn *c);
/* Sends stop: the socket is shut down, queued replies are dropped. */
void nbd_send_abort (struct nbd_conn *c);
/* The sender exits once its queue is empty; waits for it. */
void nbd_sender_stop (struct nbd_conn *c);

/* thread.c: start fn on a stack of its own, of the default thread stack
 * size, or of stack bytes if that is not 0; join, and unmap the stack. */
int nbd_thread_start (struct nbd_thread *t, size_t stack, void *(*fn) (void *), void *arg);
void nbd_thread_join (struct nbd_thread *t);

/* refuse.c: answer a connection the server will not serve (over
 * max_conns, out of descriptors) and close it: the greeting, then, if
 * answer_options, an error naming why to each option the client sends.
 * The acceptor polls the sockets being answered: nbd_refuse_poll fills
 * pfd with them and returns how many, with the milliseconds until the
 * first deadline in *timeout_ms (-1 none); nbd_refuse_events handles
 * their events.  Refusals are counted and logged, rate limited. */
void nbd_refuse (struct nbd_server *s, int fd, const char *why, bool answer_options);
unsigned nbd_refuse_poll (struct nbd_server *s, struct pollfd *pfd, int *timeout_ms);
void nbd_refuse_events (struct nbd_server *s, const struct pollfd *pfd);
void nbd_refuse_close_all (struct nbd_server *s);

/* tls.c: credentials, loaded by nbd_server_create from its config (-1
 * with errno and a line naming the file in why), freed with the server. */
int nbd_tls_load (struct nbd_server *s, char *why, size_t whylen);
void nbd_tls_free (struct nbd_server *s);
/* After STARTTLS's ACK: the TLS handshake on c, bounded by the server's
 * handshake timeout.  -1 with a line saying why in why. */
int nbd_tls_handshake (struct nbd_conn *c, char *why, size_t whylen);
void nbd_tls_end (struct nbd_conn *c);     /* free the session, if any */
/* The connection's I/O: recv, readv and sendmsg, or the same through its
 * TLS session.  Like recv: bytes, 0 at end of stream, -1 with errno
 * (EAGAIN: nothing yet with nowait, or the socket's timeout passed).
 * Under TLS sends always block (up to SO_SNDTIMEO, then EAGAIN). */
ssize_t nbd_io_recv (struct nbd_conn *c, void *buf, size_t n, bool nowait);
ssize_t nbd_io_readv (struct nbd_conn *c, const struct iovec *iov, int cnt);
ssize_t nbd_io_sendv (struct nbd_conn *c, const struct iovec *iov, int cnt, bool nowait);
/* Bytes already decrypted and waiting: readable without the socket. */
size_t nbd_io_pending (struct nbd_conn *c);

/* workq.c */
void nbd_workq_init (struct nbd_server *s);
int nbd_workq_start (struct nbd_server *s);
void nbd_workq_push (struct nbd_server *s, struct nbd_job *j);
void nbd_workq_stop (struct nbd_server *s);
/* Whether a worker still counts a job of e as running (for a moment
 * after its reply is handed over): e must stay until it does not. */
bool nbd_workq_holds (struct nbd_server *s, const struct nbd_export *e);
/* Wake the workers waiting for a job: table_exports fell, and with it
 * the cap may have risen. */
void nbd_workq_wake (struct nbd_server *s);

/* handshake.c: 0 when transmission may start, -1 to close the socket. */
#define NBD_GREETING_SIZE 18
#define NBD_OPT_REPLY_SIZE 20
void nbd_encode_greeting (uint8_t g[NBD_GREETING_SIZE]);
/* An option reply's header, its len bytes of data to follow. */
void nbd_encode_opt_reply (uint8_t h[NBD_OPT_REPLY_SIZE], uint32_t opt, uint32_t type,
                           uint32_t len);
int nbd_handshake (struct nbd_conn *c);

/* session.c: a connection from its greeting to its cleanup. */
void nbd_session_run (struct nbd_conn *c);

#define NSTAT_INC(s, f) atomic_fetch_add_explicit (&(s)->st.f, 1, memory_order_relaxed)
#define NSTAT_ADD(s, f, n) atomic_fetch_add_explicit (&(s)->st.f, (n), memory_order_relaxed)

#endif
